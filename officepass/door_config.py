"""Doors' remote configuration, the service's side (contract §11).

An operator's change (the console's door page, or `officepass door config`) becomes a new version
for that door: its settings checked against what a document may set and the door's value types, the
whole set signed once with the active key, stored. `ConfigPublisher` keeps the newest document of
every door published, retained on the door's `config` topic: at start, as soon as a version is
committed (here, in another instance or from the command line), with backoff while the broker is
away. The door checks everything again with its own rules and says in its status what it applied
(`config_version`) or why not (`config_refused`): the console shows both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from officepass.keys import KeyRing
from officepass.models import DoorConfig, StoreRecord
from officepass.repeater import Repeater
from wire.codes import config_door
from wire.fleet import REMOTE_KEYS, remote_key_problem

log = logging.getLogger("officepass.door_config")

POLL_SECONDS = 10.0

# The value each settable key takes (the door's own rules check ranges); lists of text for `require`,
# a table of kid = base64 key for `keys`.
KINDS: dict[str, type] = {
    "seats": int, "session_limit_minutes": int, "auto_checkout_after_minutes": int,
    "unlock_seconds": float, "max_unlock_seconds": float, "door_held_seconds": float,
    "url": str, "window_seconds": int, "accept_seconds": int, "require": list,
    "issuer": str, "keys": dict, "max_clock_skew_seconds": int, "max_code_ttl_seconds": int,
    "max_command_ttl_seconds": int, "command_clock_skew_seconds": int,
    "commands_need_synced_clock": bool, "max_revoked_members": int, "quiet_wait_minutes": int, "release": str,
}
assert set(KINDS) == {k for keys in REMOTE_KEYS.values() for k in keys}


class ConfigProblem(ValueError):
    """Why a change was not made; names the key."""


def parse_setting(section: str, key: str, text: str) -> Any:
    """A value as typed in a form or on the command line, as the key's kind; ConfigProblem if not."""
    if (why := remote_key_problem(section, key)) is not None:
        raise ConfigProblem(why)
    kind = KINDS[key]
    text = text.strip()
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError("true or false")
            return text.lower() == "true"
        if kind is int:
            return int(text)
        if kind is float:
            number = float(text)
            return int(number) if number.is_integer() else number
        if kind is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        if kind is dict:  # kid=base64,kid=base64
            pairs = [part.strip().split("=", 1) for part in text.split(",") if part.strip()]
            if not pairs or any(len(p) != 2 for p in pairs):
                raise ValueError("kid=BASE64 pairs, comma-separated")
            return {kid.strip(): value.strip() for kid, value in pairs}
    except ValueError as exc:
        raise ConfigProblem(f"{section}.{key}: {text[:40]!r} is not {_kind_name(kind)} ({exc})") from None
    if not text:
        raise ConfigProblem(f"{section}.{key}: empty")
    return text


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", list: "a comma-separated list",
            dict: "kid=key pairs"}.get(kind, "text")


@dataclass(frozen=True)
class Published:
    store: str
    door: str
    version: int
    document: str


def newest(db: Session, store: str, door: str) -> DoorConfig | None:
    return db.execute(select(DoorConfig).where(DoorConfig.store == store, DoorConfig.door == door)
                      .order_by(DoorConfig.version.desc()).limit(1)).scalar_one_or_none()


def change_config(db: Session, keys: KeyRing, store: str, door: str, changes: dict[str, dict[str, Any]],
                  *, by: str, now: datetime | None = None) -> DoorConfig:
    """A new version: the newest settings with `changes` over them (a value of None removes the key,
    so the door's file decides it again), signed and stored. ConfigProblem names a bad key."""
    record = db.get(StoreRecord, store)
    if record is None or door not in record.doors.get("names", []):
        raise ConfigProblem(f"no door {store}/{door}")
    for section, values in changes.items():
        for key in values:
            if (why := remote_key_problem(section, key)) is not None:
                raise ConfigProblem(why)
    now = now or datetime.now(UTC)
    current = newest(db, store, door)
    before = current.settings if current is not None else {}
    settings: dict[str, dict[str, Any]] = {s: dict(v) for s, v in before.items()}
    for section, values in changes.items():
        table = settings.setdefault(section, {})
        for key, value in values.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
    settings = {s: v for s, v in settings.items() if v}
    version = (db.execute(select(func.max(DoorConfig.version)).where(
        DoorConfig.store == store, DoorConfig.door == door)).scalar_one() or 0) + 1
    document = keys.config_document(version, config_door(store, door), settings,
                                    now=int(now.timestamp()))
    row = DoorConfig(store=store, door=door, version=version, settings=settings, document=document,
                     created=now, created_by=by[:64])
    db.add(row)
    db.flush()
    log.info("configuration v%d for %s/%s by %s: %s", version, store, door, by, settings)
    return row


def newest_documents(db: Session) -> list[Published]:
    """Every door's newest document, one query."""
    latest = (select(DoorConfig.store, DoorConfig.door, func.max(DoorConfig.version).label("v"))
              .group_by(DoorConfig.store, DoorConfig.door).subquery())
    rows = db.execute(select(DoorConfig).join(latest, (DoorConfig.store == latest.c.store)
                                              & (DoorConfig.door == latest.c.door)
                                              & (DoorConfig.version == latest.c.v))).scalars()
    return [Published(r.store, r.door, r.version, r.document) for r in rows]


class ConfigPublisher:
    """Keeps every door's newest document published (retained): one thread per instance."""

    def __init__(self, sessions: Callable[[], Session], publish: Callable[[str, str, str], None],
                 poll_seconds: float = POLL_SECONDS) -> None:
        self._sessions = sessions
        self._publish = publish  # (store, door, document) -> published retained; raises on failure
        self.published: dict[tuple[str, str], int] = {}  # the version the broker took, per door
        self._repeater = Repeater("door-configs", self._round, poll_seconds, log,
                                  "door configurations not all published")
        self.start, self.stop, self.nudge = self._repeater.start, self._repeater.stop, self._repeater.nudge

    def _round(self) -> None:
        with self._sessions() as db:
            due = [p for p in newest_documents(db) if self.published.get((p.store, p.door)) != p.version]
        for item in due:
            self._publish(item.store, item.door, item.document)
            self.published[(item.store, item.door)] = item.version
            log.info("configuration v%d of %s/%s published", item.version, item.store, item.door)
