"""Every JSON payload of contract §4 as a typed value: one `to_json` and one `from_json` each.

`from_json` takes the bytes (or text) of a message and returns the value, or raises `WireError`
naming the field and why; unknown extra fields are tolerated (kept in `extra` where a consumer may
want them, e.g. an event's type-specific fields). `to_json` writes exactly what the contract says.
Nothing here reads a clock or a file: the door and the service pass times in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from wire.codes import MEMBER_RE
from wire.fleet import UpdateState
from wire.rules import parse_rfc3339, vacancy_symbol
from wire.topics import ID_RE
from wire.vocab import Act, Alarm, Deny, DoorPosition, EventType, LockStatus, SessionState, Source, Vacancy

MAX_PAYLOAD_BYTES = 64 * 1024  # no status, seats, session, event or reply of ours comes near it
MAX_TEXT = 256  # a reason, a version, an epoch: short text
_HEX_RE = re.compile(r"[0-9a-f]{16,64}")
_E = TypeVar("_E", bound=StrEnum)


class WireError(ValueError):
    """A payload that does not fit the contract: `field` names where, the message says why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


# --- reading fields ------------------------------------------------------------------------------


def _object(data: bytes | str) -> dict[str, Any]:
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError("payload", f"{len(data)} bytes, over {MAX_PAYLOAD_BYTES}")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise WireError("payload", "not JSON") from None
    if not isinstance(body, dict):
        raise WireError("payload", "not a JSON object")
    return body


def _present(body: Mapping[str, Any], key: str) -> Any:
    if key not in body:
        raise WireError(key, "missing")
    return body[key]


def _text(body: Mapping[str, Any], key: str, *, pattern: re.Pattern[str] | None = None,
          max_len: int = MAX_TEXT, empty: bool = False) -> str:
    value = _present(body, key)
    if not isinstance(value, str):
        raise WireError(key, f"not text ({type(value).__name__})")
    if (not value and not empty) or len(value) > max_len:
        raise WireError(key, f"not text of {0 if empty else 1}-{max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise WireError(key, f"{value[:40]!r} is not of the form {pattern.pattern}")
    return value


def _optional_text(body: Mapping[str, Any], key: str, *,
                   pattern: re.Pattern[str] | None = None) -> str | None:
    if body.get(key) is None:
        return None
    return _text(body, key, pattern=pattern)


def _int(body: Mapping[str, Any], key: str, *, low: int = 0, high: int = 2**63 - 1) -> int:
    value = _present(body, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(key, f"not an integer ({type(value).__name__})")
    if not low <= value <= high:
        raise WireError(key, f"{value} is not in {low}..{high}")
    return value


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = _present(body, key)
    if not isinstance(value, bool):
        raise WireError(key, f"not true or false ({type(value).__name__})")
    return value


def _time(body: Mapping[str, Any], key: str) -> str:
    value = _text(body, key, max_len=40)
    try:
        parse_rfc3339(value)
    except ValueError:
        raise WireError(key, f"{value!r} is not an RFC 3339 time") from None
    return value


def _optional_time(body: Mapping[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else _time(body, key)


def _enum(body: Mapping[str, Any], key: str, kind: type[_E]) -> _E:
    value = _present(body, key)
    if not isinstance(value, str) or value not in kind._value2member_map_:
        raise WireError(key, f"{str(value)[:40]!r} is not one of {', '.join(kind)}")
    return kind(value)


def _optional_enum(body: Mapping[str, Any], key: str, kind: type[_E]) -> _E | None:
    return None if body.get(key) is None else _enum(body, key, kind)


def _dumps(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


# --- status --------------------------------------------------------------------------------------


class ReaderState(StrEnum):
    OK = "ok"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class UpdateReport:
    """A door's update, in its status (contract §11): the state, the release it is about, and why it
    failed or was rolled back."""

    state: UpdateState
    version: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "version": self.version, "reason": self.reason}

    @classmethod
    def from_dict(cls, body: Any) -> UpdateReport:
        if not isinstance(body, dict):
            raise WireError("update", "not an object")
        return cls(_enum(body, "state", UpdateState), _optional_text(body, "version"),
                   None if body.get("reason") is None else _text(body, "reason", max_len=1000))


@dataclass(frozen=True, slots=True)
class DoorStatus:
    """A door's retained `status` while it is online (contract §4), with §11's configuration and
    update fields: the applied remote configuration's version (None: the file alone), why the last
    one offered was refused, and the update's state."""

    lock: LockStatus
    door: DoorPosition
    alarms: tuple[Alarm, ...]
    readers: Mapping[str, ReaderState]
    clock_synced: bool
    version: str
    ts: str
    online: bool = True
    config_version: int | None = None
    config_refused: str | None = None
    update: UpdateReport | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields beyond the contract's

    def to_json(self) -> str:
        return _dumps({**self.extra, **self.to_dict()})

    def to_dict(self) -> dict[str, Any]:
        return {"online": self.online, "lock": self.lock, "door": self.door, "alarms": list(self.alarms),
                "readers": dict(self.readers), "clock_synced": self.clock_synced, "version": self.version,
                "ts": self.ts, "config_version": self.config_version, "config_refused": self.config_refused,
                "update": None if self.update is None else self.update.to_dict()}


@dataclass(frozen=True, slots=True)
class DoorOffline:
    """The Last Will (and the goodbye) a door leaves retained: `{"online": false}`."""

    online: bool = False

    def to_json(self) -> str:
        return _dumps({"online": False})


StatusMessage = DoorStatus | DoorOffline
_KNOWN_STATUS = frozenset({"online", "lock", "door", "alarms", "readers", "clock_synced", "version", "ts",
                           "config_version", "config_refused", "update"})


def parse_status(data: bytes | str) -> StatusMessage:
    return status_from_dict(_object(data))


def status_from_dict(body: Mapping[str, Any]) -> StatusMessage:
    if not isinstance(body, Mapping):
        raise WireError("payload", "not a JSON object")
    if not _bool(body, "online"):
        return DoorOffline()
    alarms = _present(body, "alarms")
    if not isinstance(alarms, list) or len(alarms) > 64:
        raise WireError("alarms", "not a list (of at most 64)")
    for alarm in alarms:
        if not isinstance(alarm, str) or alarm not in Alarm._value2member_map_:
            raise WireError("alarms", f"{str(alarm)[:40]!r} is not one of {', '.join(Alarm)}")
    readers = _present(body, "readers")
    if not isinstance(readers, dict) or len(readers) > 64:
        raise WireError("readers", "not an object (of at most 64 readers)")
    for name, health in readers.items():
        if not ID_RE.fullmatch(name) or health not in ReaderState._value2member_map_:
            raise WireError("readers", f"{name[:40]!r}: not a reader name with 'ok' or 'fault'")
    extra = {k: v for k, v in body.items() if k not in _KNOWN_STATUS}
    return DoorStatus(
        lock=_enum(body, "lock", LockStatus), door=_enum(body, "door", DoorPosition),
        alarms=tuple(Alarm(a) for a in alarms),
        readers={name: ReaderState(h) for name, h in readers.items()},
        clock_synced=_bool(body, "clock_synced"), version=_text(body, "version"), ts=_time(body, "ts"),
        config_version=None if body.get("config_version") is None else _int(body, "config_version"),
        config_refused=None if body.get("config_refused") is None else _text(body, "config_refused",
                                                                               max_len=1000),
        update=None if body.get("update") is None else UpdateReport.from_dict(body["update"]),
        extra=extra,
    )


# --- seats ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seats:
    """A store's retained `seats` (contract §4). `limit_minutes` (ours): the store's stay limit, so
    the member app shows the door's own rule before a check-in."""

    store: str
    capacity: int
    occupied: int
    ts: str
    limit_minutes: int | None = None

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.occupied)

    @property
    def symbol(self) -> Vacancy:
        return vacancy_symbol(self.available)

    def to_json(self) -> str:
        return _dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"store": self.store, "capacity": self.capacity, "occupied": self.occupied,
                                "available": self.available, "symbol": self.symbol, "ts": self.ts}
        if self.limit_minutes is not None:
            body["limit_minutes"] = self.limit_minutes
        return body

    @classmethod
    def from_json(cls, data: bytes | str) -> Seats:
        return cls.from_dict(_object(data))

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Seats:
        if not isinstance(body, Mapping):
            raise WireError("payload", "not a JSON object")
        capacity, occupied = _int(body, "capacity", high=10_000), _int(body, "occupied", high=10_000)
        seats = cls(_text(body, "store", pattern=ID_RE), capacity, occupied, _time(body, "ts"),
                    None if body.get("limit_minutes") is None
                    else _int(body, "limit_minutes", low=1, high=7 * 24 * 60))
        if _int(body, "available", high=10_000) != seats.available:
            raise WireError("available", f"is not capacity - occupied ({seats.available})")
        if _enum(body, "symbol", Vacancy) is not seats.symbol:
            raise WireError("symbol", f"is not {seats.symbol} for {seats.available} free")
        return seats


# --- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session, retained on `sessions/{member}` (contract §4); the topic's empty payload is
    its end. `warning_at` and `auto_checkout_at` (ours) are the door's own times for this stay, so
    the member app shows the door's rule, whatever its limit."""

    member: str
    state: SessionState
    checked_in_at: str
    deadline: str
    overdue: bool
    warning_at: str | None = None
    auto_checkout_at: str | None = None  # None: never

    def to_json(self) -> str:
        return _dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"member": self.member, "state": self.state,
                                "checked_in_at": self.checked_in_at, "deadline": self.deadline,
                                "overdue": self.overdue}
        if self.warning_at is not None:
            body["warning_at"] = self.warning_at
        if self.auto_checkout_at is not None:
            body["auto_checkout_at"] = self.auto_checkout_at
        return body

    @classmethod
    def from_json(cls, data: bytes | str) -> SessionInfo:
        return cls.from_dict(_object(data))

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> SessionInfo:
        if not isinstance(body, Mapping):
            raise WireError("payload", "not a JSON object")
        return cls(_text(body, "member", pattern=MEMBER_RE), _enum(body, "state", SessionState),
                   _time(body, "checked_in_at"), _time(body, "deadline"), _bool(body, "overdue"),
                   _optional_time(body, "warning_at"), _optional_time(body, "auto_checkout_at"))


def parse_session(data: bytes | str) -> SessionInfo | None:
    """A session topic's payload: None for the empty retained message that ends a session."""
    return None if not data else SessionInfo.from_json(data)


CLEARED = b""  # the empty retained payload that removes a retained message (a closed session)


# --- events --------------------------------------------------------------------------------------

_EVENT_KEYS = ("id", "seq", "epoch", "ts", "store", "door", "type", "member", "source", "reason")
_UUID_RE = re.compile(r"[0-9a-fA-F-]{32,36}")
_EPOCH_RE = re.compile(r"[A-Za-z0-9._-]{0,32}")


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """One event (contract §4) with the journal's `epoch` (appendix) and type-specific fields."""

    id: str
    seq: int
    epoch: str
    ts: str
    store: str
    door: str
    type: EventType
    member: str | None
    source: Source
    reason: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "seq": self.seq, "epoch": self.epoch, "ts": self.ts,
                                "store": self.store, "door": self.door, "type": self.type,
                                "member": self.member, "source": self.source, "reason": self.reason}
        for key, value in self.fields.items():
            body.setdefault(key, value)
        return body

    def to_json(self) -> str:
        return _dumps(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> DoorEvent:
        return cls.from_dict(_object(data))

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> DoorEvent:
        if not isinstance(body, Mapping):
            raise WireError("payload", "not a JSON object")
        fields = {k: v for k, v in body.items() if k not in _EVENT_KEYS}
        if not all(_finite(v) for v in fields.values()):
            raise WireError("fields", "a number that is not finite")
        epoch = body.get("epoch", "")  # doors before epochs numbered once, from 1
        if not isinstance(epoch, str) or not _EPOCH_RE.fullmatch(epoch):
            raise WireError("epoch", "not text of 0-32 id characters")
        return cls(
            id=_text(body, "id", pattern=_UUID_RE), seq=_int(body, "seq", low=1), epoch=epoch,
            ts=_time(body, "ts"), store=_text(body, "store", pattern=ID_RE),
            door=_text(body, "door", pattern=ID_RE), type=_enum(body, "type", EventType),
            member=_optional_text(body, "member", pattern=MEMBER_RE), source=_enum(body, "source", Source),
            reason=_optional_text(body, "reason"), fields=fields,
        )


# --- command replies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The door's answer to a command (contract §4): on the service's reply topic or `cmd/result`."""

    cti: str | None  # hex; None when the payload was not a code
    ok: bool
    result: Act | None = None
    reason: Deny | None = None

    def to_json(self) -> str:
        return _dumps({"cti": self.cti, "ok": self.ok, "result": self.result, "reason": self.reason})

    @classmethod
    def from_json(cls, data: bytes | str) -> CommandReply:
        body = _object(data)
        ok = _bool(body, "ok")
        reply = cls(_optional_text(body, "cti", pattern=_HEX_RE), ok, _optional_enum(body, "result", Act),
                    _optional_enum(body, "reason", Deny))
        if ok and reply.reason is not None:
            raise WireError("reason", "set on an answer that is ok")
        if not ok and reply.reason is None:
            raise WireError("reason", "missing on a refusal")
        return reply


MALFORMED_COMMAND = CommandReply(None, False, None, Deny.MALFORMED)
BUSY_COMMAND = CommandReply(None, False, None, Deny.BUSY)


# --- replay ----------------------------------------------------------------------------------------

REPLAY_MAX_EVENTS = 1000  # a request for more is cut to its first 1,000 (contract §4)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """A consumer asks a door to publish events `first..last` of `epoch` again (contract §4)."""

    epoch: str
    first: int
    last: int

    def to_json(self) -> str:
        return _dumps({"epoch": self.epoch, "from": self.first, "to": self.last})

    @classmethod
    def from_json(cls, data: bytes | str) -> ReplayRequest:
        body = _object(data)
        epoch = body.get("epoch")
        if not isinstance(epoch, str) or not _EPOCH_RE.fullmatch(epoch):
            raise WireError("epoch", "missing or not text of 0-32 id characters")
        request = cls(epoch, _int(body, "from", low=1), _int(body, "to", low=1))
        if request.last < request.first:
            raise WireError("to", "is before from")
        return request

    def cut(self) -> ReplayRequest:
        """The part a door serves: at most REPLAY_MAX_EVENTS seqs."""
        return ReplayRequest(self.epoch, self.first, min(self.last, self.first + REPLAY_MAX_EVENTS - 1))


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a door sent again, and the ranges its journal no longer holds (contract §4)."""

    epoch: str
    first: int
    last: int
    sent: int
    missing: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> str:
        return _dumps({"epoch": self.epoch, "from": self.first, "to": self.last, "sent": self.sent,
                       "missing": [list(r) for r in self.missing]})

    @classmethod
    def from_json(cls, data: bytes | str) -> ReplayResult:
        body = _object(data)
        request = ReplayRequest.from_json(data)
        missing = _present(body, "missing")
        if not isinstance(missing, list) or len(missing) > REPLAY_MAX_EVENTS:
            raise WireError("missing", "not a list of ranges")
        ranges: list[tuple[int, int]] = []
        for item in missing:
            if (not isinstance(item, list) or len(item) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                    or not request.first <= item[0] <= item[1] <= request.last):
                raise WireError("missing", f"{str(item)[:40]} is not a [first, last] range inside from..to")
            ranges.append((item[0], item[1]))
        return cls(request.epoch, request.first, request.last,
                   _int(body, "sent", high=REPLAY_MAX_EVENTS), tuple(ranges))
