"""The door's whole decision logic as one pure function (contract §2-§3).

`next_state(state, input, now, policy)` -> `Outcome(decision, state, events)`.
No I/O, no clock reads, no randomness: the daemon journals the outcome and only
then moves the relay, and tests can drive any sequence of requests and clock
jumps through it. `now` is door time in unix seconds (see controller.clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

SessionState = Literal["checked_in", "checking_out"]
Source = Literal["entry", "exit", "remote", "button", "fire", "system"]

# Before the deadline by this much: overstay_warning. Shorter limits warn a quarter early.
WARNING_LEAD_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Policy:
    seats: int = 2
    session_limit_seconds: float = 120 * 60
    auto_checkout_after_seconds: float = 30 * 60  # 0 = never

    @property
    def warning_lead_seconds(self) -> float:
        if self.session_limit_seconds < 3600:
            return self.session_limit_seconds / 4
        return WARNING_LEAD_SECONDS

    @classmethod
    def from_minutes(cls, seats: int, session_limit_minutes: int, auto_checkout_after_minutes: int) -> Policy:
        return cls(seats, session_limit_minutes * 60.0, auto_checkout_after_minutes * 60.0)


@dataclass(frozen=True, slots=True)
class Session:
    member: str
    state: SessionState
    checked_in_at: float
    deadline: float
    warned: bool = False
    overdue: bool = False


@dataclass(frozen=True)
class DoorState:
    """Live sessions by member. Treated as immutable: every change makes a new DoorState."""

    sessions: Mapping[str, Session] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def occupied(self) -> int:
        return len(self.sessions)

    def available(self, policy: Policy) -> int:
        return max(0, policy.seats - self.occupied)

    def with_session(self, session: Session) -> DoorState:
        sessions = dict(self.sessions)
        sessions[session.member] = session
        return DoorState(MappingProxyType(sessions))

    def without(self, member: str) -> DoorState:
        sessions = dict(self.sessions)
        sessions.pop(member, None)
        return DoorState(MappingProxyType(sessions))

    @classmethod
    def of(cls, sessions: list[Session]) -> DoorState:
        return cls(MappingProxyType({s.member: s for s in sessions}))


def vacancy_symbol(available: int) -> str:
    """○ two or more free, △ one, × none (the member app's vacancy)."""
    if available >= 2:
        return "○"
    return "△" if available == 1 else "×"


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A verified, unused code: the member, what it asks, and where it came from."""

    member: str
    source: Literal["entry", "exit", "remote"]
    act: str | None = None
    cti: bytes | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A code that failed verification: journaled as a `denied` event, nothing else changes."""

    reason: str
    source: Literal["entry", "exit", "remote"]
    member: str | None = None  # only when the signature checked out
    cti: bytes | None = None


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """The request-to-exit button: unlocks for anyone, no code needed."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: warnings, overstays and auto-checkouts fall due."""


Input = Request | Rejected | ExitRequest | Tick


# --- outputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    member: str | None
    source: Source
    reason: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    ok: bool
    unlock: bool = False
    result: str | None = None  # what was done: check_in, unlock, checkout_begin, checkout
    reason: str | None = None  # why not, when denied


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    state: DoorState
    events: tuple[Event, ...]


NOTHING = Decision(ok=True)


def next_state(state: DoorState, inp: Input, now: float, policy: Policy) -> Outcome:
    """The door's one decision function."""
    state, events = _advance_time(state, now, policy)
    if isinstance(inp, Tick):
        return Outcome(NOTHING, state, tuple(events))
    if isinstance(inp, ExitRequest):
        events.append(Event("unlock", None, "button"))
        return Outcome(Decision(True, unlock=True, result="unlock"), state, tuple(events))
    if isinstance(inp, Rejected):
        events.append(Event("denied", inp.member, inp.source, inp.reason, _code_fields(None, inp.cti)))
        return Outcome(Decision(False, reason=inp.reason), state, tuple(events))
    decision, state, more = _decide(state, inp, now, policy)
    events.extend(more)
    return Outcome(decision, state, tuple(events))


def _code_fields(act: str | None, cti: bytes | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if act is not None:
        fields["act"] = act
    if cti is not None:
        fields["cti"] = cti.hex()
    return fields


def _decide(
    state: DoorState, req: Request, now: float, policy: Policy
) -> tuple[Decision, DoorState, list[Event]]:
    member, source = req.member, req.source
    session = state.sessions.get(member)
    # Without an act, the reader's side says what the member means.
    act = req.act or ("check_in" if source == "entry" else "unlock")
    base = _code_fields(req.act, req.cti)

    def deny(reason: str) -> tuple[Decision, DoorState, list[Event]]:
        return Decision(False, reason=reason), state, [Event("denied", member, source, reason, base)]

    def unlock() -> tuple[Decision, DoorState, list[Event]]:
        fields = dict(base)
        if session is not None and session.overdue:
            fields["overdue"] = True
        event = Event("unlock", member, source, None, fields)
        return Decision(True, unlock=True, result="unlock"), state, [event]

    if session is None:
        if act != "check_in":
            return deny("not_checked_in")
        if state.occupied >= policy.seats:
            return deny("full")
        new = Session(member, "checked_in", now, now + policy.session_limit_seconds)
        fields = {**base, "deadline": new.deadline}
        return (
            Decision(True, unlock=True, result="check_in"),
            state.with_session(new),
            [Event("check_in", member, source, None, fields), Event("unlock", member, source, None, base)],
        )

    if act in ("check_in", "unlock"):
        return unlock()
    if act == "checkout_begin":
        if session.state == "checking_out":
            return Decision(True, result="checkout_begin"), state, []  # nothing new
        return (
            Decision(True, result="checkout_begin"),
            state.with_session(replace(session, state="checking_out")),
            [Event("checkout_begin", member, source, None, base)],
        )
    # act == "checkout"
    fields = {**base, "auto": False, "checked_in_at": session.checked_in_at, "overdue": session.overdue}
    return (
        Decision(True, result="checkout"),
        state.without(member),
        [Event("checkout", member, source, None, fields)],
    )


def _advance_time(state: DoorState, now: float, policy: Policy) -> tuple[DoorState, list[Event]]:
    events: list[Event] = []
    for member in sorted(state.sessions):
        session = state.sessions[member]
        updated = session
        if not updated.warned and now >= updated.deadline - policy.warning_lead_seconds:
            updated = replace(updated, warned=True)
            events.append(Event("overstay_warning", member, "system", None, {"deadline": updated.deadline}))
        if not updated.overdue and now >= updated.deadline:
            updated = replace(updated, overdue=True)
            events.append(Event("overstay", member, "system", None, {"deadline": updated.deadline}))
        auto = policy.auto_checkout_after_seconds
        if auto > 0 and now >= updated.deadline + auto:
            fields = {"auto": True, "checked_in_at": updated.checked_in_at, "overdue": True}
            events.append(Event("checkout", member, "system", None, fields))
            state = state.without(member)
            continue
        if updated is not session:
            state = state.with_session(updated)
    return state, events


def next_due(state: DoorState, policy: Policy) -> float | None:
    """The next door time at which a Tick would change something (for the reactor's timer)."""
    times: list[float] = []
    for s in state.sessions.values():
        if not s.warned:
            times.append(s.deadline - policy.warning_lead_seconds)
        elif not s.overdue:
            times.append(s.deadline)
        elif policy.auto_checkout_after_seconds > 0:
            times.append(s.deadline + policy.auto_checkout_after_seconds)
    return min(times) if times else None
