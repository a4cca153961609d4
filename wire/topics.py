"""Every MQTT topic of contract §4 and §11: one function per topic, and one parser back.

`Topics(prefix)` builds topics for any store and door; `DoorTopics` is one door's own set (what the
door publishes and subscribes to). `Topics.parse` turns a topic into a `Topic` naming its kind and
ids, or None when it is none of ours, so a consumer matches on kinds, never on string suffixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from wire.rules import DEFAULT_PREFIX

# Store, door, member and instance ids travel inside topics: one level, no wildcards or separators.
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
SHARE_GROUP = "officepass"  # the service instances' shared subscription group (contract §8)
HOME_ASSISTANT_STATUS = "homeassistant/status"  # Home Assistant's birth and will messages


class Kind(StrEnum):
    """What a topic carries."""

    STATUS = "status"
    SEATS = "seats"
    SESSION = "session"
    EVENTS = "events"
    CMD = "cmd"
    CMD_RESULT = "cmd_result"
    REPLAY = "replay"
    REPLAY_RESULT = "replay_result"
    CONFIG = "config"
    REVOKED = "revoked"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: its kind and the ids it names (None where the kind has none)."""

    kind: Kind
    store: str | None = None
    door: str | None = None
    member: str | None = None  # SESSION
    instance: str | None = None  # REPLY


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be a topic prefix, or None: levels of text with no wildcard, no empty level."""
    if not prefix:
        return "is empty"
    if any(c in prefix for c in "+#\0"):
        return "holds an MQTT wildcard (+ or #) or a NUL"
    if prefix.startswith("$"):
        return "starts with $ (reserved for the broker)"
    if prefix.endswith("/"):
        return "ends with /: write it without the trailing slash"
    if "" in prefix.split("/"):
        return "has an empty level (// or a leading /)"
    return None


class Topics:
    """The topics under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        problem = prefix_problem(prefix)
        if problem is not None:
            raise ValueError(f"topic prefix {prefix!r} {problem}")
        self.prefix = prefix
        self._levels = prefix.split("/")

    def _store(self, store: str) -> str:
        return f"{self.prefix}/stores/{store}"

    def _door(self, store: str, door: str) -> str:
        return f"{self.prefix}/stores/{store}/doors/{door}"

    # --- one function per topic ------------------------------------------------------------

    def status(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/status"

    def seats(self, store: str) -> str:
        return f"{self._store(store)}/seats"

    def session(self, store: str, member: str) -> str:
        return f"{self._store(store)}/sessions/{member}"

    def events(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/events"

    def cmd(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/cmd"

    def cmd_result(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/cmd/result"

    def replay(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/replay"

    def replay_result(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/replay/result"

    def config(self, store: str, door: str) -> str:
        return f"{self._door(store, door)}/config"

    def revoked(self) -> str:
        return f"{self.prefix}/revoked"

    def reply(self, instance: str, store: str, door: str) -> str:
        """Where a door answers one service instance's commands (contract §4, §8)."""
        return f"{self.prefix}/svc/{instance}/replies/{store}/{door}"

    # --- filters -----------------------------------------------------------------------------

    def sessions_filter(self, store: str) -> str:
        return self.session(store, "+")

    def replies_filter(self, instance: str) -> str:
        """Every reply to one service instance, from any door."""
        return self.reply(instance, "+", "+")

    def all_events_shared(self) -> str:
        """Every door's events, split among the service instances (contract §8)."""
        return f"$share/{SHARE_GROUP}/{self.events('+', '+')}"

    def all_retained(self) -> list[str]:
        """Every door's status, every store's seats and sessions (ordinary subscriptions: brokers
        send no retained messages to shared ones)."""
        return [self.status("+", "+"), self.seats("+"), self.sessions_filter("+")]

    def all_replay_results(self) -> str:
        return self.replay_result("+", "+")

    # --- back from a topic -------------------------------------------------------------------

    def parse(self, topic: str) -> Topic | None:
        """The kind and ids of one of our topics; None for anything else (or an id that is not one)."""
        levels = topic.split("/")
        n = len(self._levels)
        if levels[:n] != self._levels:
            return None
        rest = levels[n:]
        parsed = _parse_rest(rest)
        if parsed is None:
            return None
        ids = [v for v in (parsed.store, parsed.door, parsed.member, parsed.instance) if v is not None]
        return parsed if all(ID_RE.fullmatch(v) for v in ids) else None


def _parse_rest(rest: list[str]) -> Topic | None:
    match rest:
        case ["revoked"]:
            return Topic(Kind.REVOKED)
        case ["stores", store, "seats"]:
            return Topic(Kind.SEATS, store)
        case ["stores", store, "sessions", member]:
            return Topic(Kind.SESSION, store, member=member)
        case ["stores", store, "doors", door, "status"]:
            return Topic(Kind.STATUS, store, door)
        case ["stores", store, "doors", door, "events"]:
            return Topic(Kind.EVENTS, store, door)
        case ["stores", store, "doors", door, "cmd"]:
            return Topic(Kind.CMD, store, door)
        case ["stores", store, "doors", door, "cmd", "result"]:
            return Topic(Kind.CMD_RESULT, store, door)
        case ["stores", store, "doors", door, "replay"]:
            return Topic(Kind.REPLAY, store, door)
        case ["stores", store, "doors", door, "replay", "result"]:
            return Topic(Kind.REPLAY_RESULT, store, door)
        case ["stores", store, "doors", door, "config"]:
            return Topic(Kind.CONFIG, store, door)
        case ["svc", instance, "replies", store, door]:
            return Topic(Kind.REPLY, store, door, instance=instance)
        case _:
            return None


class DoorTopics:
    """One door's own topics: what it publishes and what it listens to."""

    def __init__(self, prefix: str, store: str, door: str) -> None:
        self.all = Topics(prefix)
        self.store, self.door = store, door
        self.status = self.all.status(store, door)
        self.seats = self.all.seats(store)
        self.sessions = self.all.sessions_filter(store)
        self.events = self.all.events(store, door)
        self.cmd = self.all.cmd(store, door)
        self.cmd_result = self.all.cmd_result(store, door)
        self.replay = self.all.replay(store, door)
        self.replay_result = self.all.replay_result(store, door)
        self.config = self.all.config(store, door)
        self.revoked = self.all.revoked()
        self.ha_status = HOME_ASSISTANT_STATUS

    def session(self, member: str) -> str:
        return self.all.session(self.store, member)

    def session_member(self, topic: str) -> str | None:
        """The member of one of this store's session topics, else None."""
        parsed = self.all.parse(topic)
        if parsed is None or parsed.kind is not Kind.SESSION or parsed.store != self.store:
            return None
        return parsed.member

    def may_reply_to(self, topic: str) -> bool:
        """A command's response topic the door may publish to: a service instance's reply topic for
        this very door (contract §4); anything else gets `cmd/result`."""
        parsed = self.all.parse(topic)
        return (parsed is not None and parsed.kind is Kind.REPLY and parsed.store == self.store
                and parsed.door == self.door)
