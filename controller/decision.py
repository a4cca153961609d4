"""The door's whole behaviour as one pure function (contract §2-§3).

`next_state(state, input, now, policy) -> Step(state, effects)`

Sessions and seats, the relay pulse, the door and bolt sensors, the exit button, the
fire hold and every alarm with its deadline live in one immutable `DoorState`. Inputs
are data (a verified code, a rejected code, a pin edge, reader or journal health, a
relay-guard trip, a tick); effects are data (`Energize`, `Deenergize`, `Hold`,
`Journal`, `Reply`, `Publish`). No I/O, no clock reads, no randomness: `DoorCore`
applies the effects in one fixed order, and tests drive any sequence of inputs and
clock jumps through this function without sleeping.

Two clocks: `now.door` is door time in unix seconds (sessions, deadlines a member
sees); `now.mono` is monotonic seconds (relay pulses, alarm timers), which a
wall-clock jump never stretches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, assert_never

from wire.rules import warning_lead_seconds
from wire.vocab import (
    Act,
    Alarm,
    BoltPosition,
    Deny,
    DoorPosition,
    EventType,
    LockStatus,
    SessionState,
    Side,
    Source,
)

# Alarms a restart must not forget while they are still true (a jammed bolt is still jammed).
# journal_error is found again by the first write; cloud_config and fire by reading config and pins.
PERSISTENT_ALARMS = frozenset({Alarm.DOOR_FORCED, Alarm.DOOR_HELD, Alarm.UNLOCK_FAULT, Alarm.LOCK_FAULT,
                               Alarm.READER_FAULT})
# With a lock sensor: the bolt must follow the relay within this long (contract §3).
BOLT_FOLLOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Policy:
    """The configured rules the function applies. Built from the config (the only place defaults live)."""

    seats: int
    session_limit_seconds: float
    auto_checkout_after_seconds: float  # 0 = never
    unlock_seconds: float
    door_held_seconds: float
    has_lock_sensor: bool
    # Acts an app command may ask only with a code the door's screen showed lately (contract §9).
    presence_required: frozenset[Act] = frozenset()

    @property
    def warning_lead_seconds(self) -> float:
        return warning_lead_seconds(self.session_limit_seconds)


@dataclass(frozen=True, slots=True)
class Now:
    door: float  # unix seconds, door time (controller.clock)
    mono: float  # monotonic seconds


# --- state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    member: str
    state: SessionState
    checked_in_at: float
    deadline: float
    warned: bool = False
    overdue: bool = False


@dataclass(frozen=True, slots=True)
class Physical:
    """The relay, the inputs and the alarm timers. Deadlines are monotonic seconds."""

    pulse_until: float | None = None  # an unlock pulse holds the relay on until then
    pulse_opened: bool = False  # the door opened during the current pulse
    fire: bool = False  # the fire input holds the relay on
    exit_pressed: bool = False
    door: DoorPosition = DoorPosition.UNKNOWN
    bolt: BoltPosition = BoltPosition.UNKNOWN
    held_due: float | None = None  # door_held falls due
    bolt_due: float | None = None  # the bolt must be where bolt_expected says by then
    bolt_expected: BoltPosition | None = None
    bolt_moved: bool = False  # the bolt retracted at some point during the current pulse
    # The member whose check-in started the current pulse: withdrawn if the bolt never moves.
    pulse_check_in: str | None = None

    @property
    def energized(self) -> bool:
        return self.pulse_until is not None or self.fire


@dataclass(frozen=True)
class DoorState:
    """Everything the door knows. Immutable: every change makes a new DoorState."""

    sessions: Mapping[str, Session] = field(default_factory=lambda: MappingProxyType({}))
    physical: Physical = field(default_factory=Physical)
    alarms: frozenset[Alarm] = frozenset()
    faulty_readers: frozenset[str] = frozenset()

    @property
    def occupied(self) -> int:
        return len(self.sessions)

    def available(self, policy: Policy) -> int:
        return max(0, policy.seats - self.occupied)

    @property
    def journal_ok(self) -> bool:
        return Alarm.JOURNAL_ERROR not in self.alarms

    @property
    def lock(self) -> LockStatus:
        if Alarm.UNLOCK_FAULT in self.alarms or Alarm.LOCK_FAULT in self.alarms:
            return LockStatus.JAMMED
        return LockStatus.UNLOCKED if self.physical.energized else LockStatus.LOCKED

    def with_session(self, session: Session) -> DoorState:
        sessions = dict(self.sessions)
        sessions[session.member] = session
        return replace(self, sessions=MappingProxyType(sessions))

    def without(self, member: str) -> DoorState:
        sessions = dict(self.sessions)
        sessions.pop(member, None)
        return replace(self, sessions=MappingProxyType(sessions))

    @classmethod
    def restored(
        cls, sessions: list[Session], alarms: frozenset[Alarm] = frozenset(),
        faulty_readers: frozenset[str] = frozenset(), fire: bool = False,
    ) -> DoorState:
        """The state a restart starts from: what the journal kept. The relay is off after a restart."""
        return cls(MappingProxyType({s.member: s for s in sessions}), Physical(fire=fire), alarms,
                   faulty_readers)


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """A verified, unused code: the member, what it asks, and where it came from."""

    member: str
    side: Side
    act: Act | None = None
    cti: bytes | None = None


@dataclass(frozen=True, slots=True)
class CodeRejected:
    """A code that failed verification: journaled as a `denied` event, nothing else changes."""

    reason: Deny
    side: Side
    member: str | None = None  # only when the signature checked out
    cti: bytes | None = None


@dataclass(frozen=True, slots=True)
class ExitButton:
    pressed: bool


@dataclass(frozen=True, slots=True)
class FireInput:
    active: bool


@dataclass(frozen=True, slots=True)
class DoorSensor:
    closed: bool


@dataclass(frozen=True, slots=True)
class BoltSensor:
    retracted: bool


@dataclass(frozen=True, slots=True)
class Sensed:
    """The inputs as read at start (None: no such sensor). Sets them without edge effects,
    except that a fire input already active holds the door open."""

    door_closed: bool | None
    bolt_retracted: bool | None
    fire: bool
    exit_pressed: bool


@dataclass(frozen=True, slots=True)
class ReaderHealth:
    reader: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class JournalHealth:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RevocationApplied:
    """A newer signed revocation list was stored (journaled as an event)."""

    version: int
    count: int


@dataclass(frozen=True, slots=True)
class CloudProblem:
    """The cloud link could not be set up (a bad certificate or password file): the door runs
    offline with the cloud_config alarm until it is restarted with good files."""

    detail: str


@dataclass(frozen=True, slots=True)
class RelayTripped:
    """The relay guard dropped a relay that stayed on past its bound (the loop was late)."""

    on_seconds: float
    max_seconds: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: pulses end, alarms and session deadlines fall due."""


Input = (
    CodeRequest | CodeRejected | ExitButton | FireInput | DoorSensor | BoltSensor | Sensed | ReaderHealth
    | JournalHealth | CloudProblem | RevocationApplied | RelayTripped | Tick
)


# --- outputs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    member: str | None
    source: Source
    reason: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a code or command."""

    ok: bool
    unlock: bool = False
    result: Act | None = None  # what was done
    reason: Deny | None = None  # why not


@dataclass(frozen=True, slots=True)
class Energize:
    """Relay on (or kept on) until this monotonic time; the guard bounds it from now."""

    until: float


@dataclass(frozen=True, slots=True)
class Deenergize:
    pass


@dataclass(frozen=True, slots=True)
class Hold:
    """The fire input: relay on without a bound while active."""

    active: bool


@dataclass(frozen=True, slots=True)
class Journal:
    """Write these events and the new state in one transaction.

    `gates`: the other effects may happen only once this is written (a code's unlock). Otherwise
    the relay moves first and the journal follows (an exit button must open whatever the disk does).
    """

    events: tuple[Event, ...]
    gates: bool


@dataclass(frozen=True, slots=True)
class Reply:
    decision: Decision


@dataclass(frozen=True, slots=True)
class Publish:
    """What the cloud and the technician see (status, seats, sessions) changed."""


Effect = Energize | Deenergize | Hold | Journal | Reply | Publish


@dataclass(frozen=True, slots=True)
class Step:
    state: DoorState
    effects: tuple[Effect, ...]

    @property
    def decision(self) -> Decision | None:
        for effect in self.effects:
            if isinstance(effect, Reply):
                return effect.decision
        return None

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(e for effect in self.effects if isinstance(effect, Journal) for e in effect.events)


# --- the function -----------------------------------------------------------------------


class _Draft:
    """Collects one step's changes; only ever lives inside next_state."""

    def __init__(self, state: DoorState) -> None:
        self.state = state
        self.events: list[Event] = []
        self.relay: list[Effect] = []
        self.reply: Decision | None = None
        self.gates = False

    @property
    def phys(self) -> Physical:
        return self.state.physical

    def set_phys(self, **changes: Any) -> None:
        self.state = replace(self.state, physical=replace(self.state.physical, **changes))

    def emit(self, type_: EventType, source: Source, member: str | None = None, reason: str | None = None,
             **fields: Any) -> None:
        self.events.append(Event(type_, member, source, reason, fields))

    def raise_alarm(self, alarm: Alarm) -> bool:
        if alarm in self.state.alarms:
            return False
        self.state = replace(self.state, alarms=self.state.alarms | {alarm})
        return True

    def clear_alarm(self, alarm: Alarm, *, announce: bool = True) -> None:
        if alarm not in self.state.alarms:
            return
        self.state = replace(self.state, alarms=self.state.alarms - {alarm})
        if announce:
            self.emit(EventType.ALARM_CLEARED, Source.SYSTEM, None, None, alarm=alarm)


def next_state(state: DoorState, inp: Input, now: Now, policy: Policy) -> Step:
    """The door's one decision function."""
    draft = _Draft(state)
    _advance_sessions(draft, now, policy)
    _advance_timers(draft, now, policy)
    match inp:
        case CodeRequest():
            _code_request(draft, inp, now, policy)
        case CodeRejected():
            source = Source(inp.side)
            draft.emit(EventType.DENIED, source, inp.member, inp.reason, **_code_fields(None, inp.cti))
            draft.reply = Decision(False, reason=inp.reason)
        case ExitButton(pressed=True):
            draft.set_phys(exit_pressed=True)
            _start_pulse(draft, now, policy)
            draft.emit(EventType.UNLOCK, Source.BUTTON)
        case ExitButton(pressed=False):
            draft.set_phys(exit_pressed=False)
        case FireInput():
            _fire(draft, inp.active, now, policy)
        case DoorSensor():
            _door(draft, inp.closed, now, policy)
        case BoltSensor():
            _bolt(draft, inp.retracted, now, policy)
        case Sensed():
            _sensed(draft, inp, now, policy)
        case ReaderHealth():
            _reader_health(draft, inp)
        case JournalHealth(ok=False):
            draft.raise_alarm(Alarm.JOURNAL_ERROR)
        case JournalHealth(ok=True):
            if Alarm.JOURNAL_ERROR in draft.state.alarms:
                draft.clear_alarm(Alarm.JOURNAL_ERROR, announce=False)
                draft.emit(EventType.JOURNAL_RECOVERED, Source.SYSTEM, None, None)
        case RevocationApplied():
            draft.emit(EventType.REVOCATION_APPLIED, Source.SYSTEM, None, None, version=inp.version,
                       count=inp.count)
        case CloudProblem():
            draft.raise_alarm(Alarm.CLOUD_CONFIG)
        case RelayTripped():
            draft.set_phys(pulse_until=None)
            draft.emit(EventType.RELAY_WATCHDOG, Source.SYSTEM, None, "max_unlock_exceeded",
                       on_seconds=round(inp.on_seconds, 3), max_unlock_seconds=inp.max_seconds)
            _start_bolt_check(draft, now, policy, BoltPosition.EXTENDED)
        case Tick():
            pass
    return _finish(state, draft)


def _finish(before: DoorState, draft: _Draft) -> Step:
    effects: list[Effect] = []
    unchanged = draft.state is before  # most ticks: no state to compare
    if draft.events or (not unchanged and kept_by_journal(before) != kept_by_journal(draft.state)):
        effects.append(Journal(tuple(draft.events), draft.gates))
    effects.extend(draft.relay)
    if draft.reply is not None:
        effects.append(Reply(draft.reply))
    if not unchanged and _public(before) != _public(draft.state):
        effects.append(Publish())
    return Step(draft.state, tuple(effects))


@dataclass(frozen=True, slots=True)
class Kept:
    """What the journal keeps of the state, defined once: a change here needs a Journal effect, and
    a restart starts from it (`DoorState.restored`)."""

    sessions: Mapping[str, Session]
    alarms: frozenset[Alarm]
    faulty_readers: frozenset[str]
    fire: bool

    def same_conditions(self, other: Kept) -> bool:
        """Alarms, faulty readers and the fire hold unchanged (sessions aside)."""
        mine = (self.alarms, self.faulty_readers, self.fire)
        return mine == (other.alarms, other.faulty_readers, other.fire)


def kept_by_journal(state: DoorState) -> Kept:
    return Kept(state.sessions, state.alarms & PERSISTENT_ALARMS, state.faulty_readers, state.physical.fire)


def _public(state: DoorState) -> tuple[object, ...]:
    """What the status, seats and sessions topics show."""
    return (state.sessions, state.alarms, state.faulty_readers, state.lock, state.physical.door)


def _code_fields(act: Act | None, cti: bytes | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if act is not None:
        fields["act"] = act
    if cti is not None:
        fields["cti"] = cti.hex()
    return fields


# --- codes and sessions ---------------------------------------------------------------------


def _code_request(draft: _Draft, req: CodeRequest, now: Now, policy: Policy) -> None:
    member, source = req.member, Source(req.side)
    base = _code_fields(req.act, req.cti)

    def deny(reason: Deny) -> None:
        draft.emit(EventType.DENIED, source, member, reason, **base)
        draft.reply = Decision(False, reason=reason)

    # Without an act, the reader's side says what the member means.
    act = req.act or (Act.CHECK_IN if req.side is Side.ENTRY else Act.UNLOCK)
    if not draft.state.journal_ok:
        # Nothing may take effect that the journal does not hold (contract §3); the denial itself is
        # logged, and journaled if the disk comes back.
        deny(Deny.JOURNAL_ERROR)
        return
    draft.gates = True
    session = draft.state.sessions.get(member)

    if session is None:
        if act is not Act.CHECK_IN:
            deny(Deny.NOT_CHECKED_IN)
            return
        if draft.state.occupied >= policy.seats:
            deny(Deny.FULL)
            return
        new = Session(member, SessionState.CHECKED_IN, now.door, now.door + policy.session_limit_seconds)
        draft.state = draft.state.with_session(new)
        draft.emit(EventType.CHECK_IN, source, member, None, **base, deadline=new.deadline)
        _start_pulse(draft, now, policy)
        if draft.phys.bolt_expected is BoltPosition.RETRACTED:  # the check judges this very check-in
            draft.set_phys(pulse_check_in=member)
        draft.emit(EventType.UNLOCK, source, member, None, **base)
        draft.reply = Decision(True, unlock=True, result=Act.CHECK_IN)
        return

    match act:
        case Act.CHECK_IN | Act.UNLOCK:
            _start_pulse(draft, now, policy)
            extra = {"overdue": True} if session.overdue else {}
            draft.emit(EventType.UNLOCK, source, member, None, **base, **extra)
            draft.reply = Decision(True, unlock=True, result=Act.UNLOCK)
        case Act.CHECKOUT_BEGIN:
            if session.state is not SessionState.CHECKING_OUT:  # a second press: nothing new
                draft.state = draft.state.with_session(replace(session, state=SessionState.CHECKING_OUT))
                draft.emit(EventType.CHECKOUT_BEGIN, source, member, None, **base)
            draft.reply = Decision(True, result=Act.CHECKOUT_BEGIN)
        case Act.CHECKOUT:
            draft.state = draft.state.without(member)
            draft.emit(EventType.CHECKOUT, source, member, None, **base, auto=False,
                       checked_in_at=session.checked_in_at, overdue=session.overdue)
            draft.reply = Decision(True, result=Act.CHECKOUT)
        case _:  # every act is handled above; a new one fails the type check here, never falls through
            assert_never(act)


def _advance_sessions(draft: _Draft, now: Now, policy: Policy) -> None:
    for member in sorted(draft.state.sessions):
        session = draft.state.sessions[member]
        updated = session
        if not updated.warned and now.door >= updated.deadline - policy.warning_lead_seconds:
            updated = replace(updated, warned=True)
            draft.emit(EventType.OVERSTAY_WARNING, Source.SYSTEM, member, None, deadline=updated.deadline)
        if not updated.overdue and now.door >= updated.deadline:
            updated = replace(updated, overdue=True)
            draft.emit(EventType.OVERSTAY, Source.SYSTEM, member, None, deadline=updated.deadline)
        auto = policy.auto_checkout_after_seconds
        if auto > 0 and now.door >= updated.deadline + auto:
            draft.emit(EventType.CHECKOUT, Source.SYSTEM, member, None, auto=True,
                       checked_in_at=updated.checked_in_at, overdue=True)
            draft.state = draft.state.without(member)
        elif updated is not session:
            draft.state = draft.state.with_session(updated)


def _reader_health(draft: _Draft, inp: ReaderHealth) -> None:
    faulty = draft.state.faulty_readers
    if inp.ok and inp.reader in faulty:
        faulty = faulty - {inp.reader}
        draft.emit(EventType.READER_RECOVERED, Source.SYSTEM, None, None, reader=inp.reader)
    elif not inp.ok and inp.reader not in faulty:
        faulty = faulty | {inp.reader}
        draft.emit(EventType.READER_FAULT, Source.SYSTEM, None, inp.detail, reader=inp.reader)
    else:
        return
    draft.state = replace(draft.state, faulty_readers=faulty)
    if faulty:
        draft.raise_alarm(Alarm.READER_FAULT)
    else:
        draft.clear_alarm(Alarm.READER_FAULT)


# --- the relay, the door and the bolt ---------------------------------------------------------


def _start_pulse(draft: _Draft, now: Now, policy: Policy) -> None:
    """Unlock for unlock_seconds from now. A new unlock restarts the pulse: the guard's bound counts
    from the newest request, so members in a row never add up to a watchdog trip."""
    was_on = draft.phys.energized
    until = now.mono + policy.unlock_seconds
    draft.set_phys(pulse_until=until)
    if not was_on:
        draft.set_phys(pulse_opened=False, bolt_moved=False, pulse_check_in=None)
        _start_bolt_check(draft, now, policy, BoltPosition.RETRACTED)
    draft.relay.append(Energize(until))


def _end_pulse(draft: _Draft, now: Now, policy: Policy) -> None:
    draft.set_phys(pulse_until=None)
    if draft.phys.fire:
        return
    draft.relay.append(Deenergize())
    # An unlock check still open judges the whole pulse; otherwise the bolt must now come back out.
    if draft.phys.bolt_expected is not BoltPosition.RETRACTED:
        _start_bolt_check(draft, now, policy, BoltPosition.EXTENDED)


def _start_bolt_check(draft: _Draft, now: Now, policy: Policy, expected: BoltPosition) -> None:
    if policy.has_lock_sensor:
        draft.set_phys(bolt_expected=expected, bolt_due=now.mono + BOLT_FOLLOW_SECONDS)


def _advance_timers(draft: _Draft, now: Now, policy: Policy) -> None:
    phys = draft.phys
    if phys.pulse_until is not None and now.mono >= phys.pulse_until:
        _end_pulse(draft, now, policy)
    phys = draft.phys
    if phys.held_due is not None and now.mono >= phys.held_due:
        draft.set_phys(held_due=None)
        if phys.door is DoorPosition.OPEN and not phys.fire and draft.raise_alarm(Alarm.DOOR_HELD):
            draft.emit(EventType.DOOR_HELD, Source.SYSTEM, None, None, held_seconds=policy.door_held_seconds)
    phys = draft.phys
    if phys.bolt_due is not None and now.mono >= phys.bolt_due:
        draft.set_phys(bolt_due=None, bolt_expected=None)
        _judge_bolt(draft, phys, now, policy)


def _judge_bolt(draft: _Draft, phys: Physical, now: Now, policy: Policy) -> None:
    """A bolt check fell due: is the bolt where the relay says it should be?"""
    retracted = phys.bolt is BoltPosition.RETRACTED
    if phys.bolt_expected is BoltPosition.RETRACTED:
        # Judged on the whole pulse so far: a pulse shorter than the check still counts.
        if not phys.bolt_moved and not retracted:
            if draft.raise_alarm(Alarm.UNLOCK_FAULT):
                draft.emit(EventType.UNLOCK_FAULT, Source.SYSTEM, None, "bolt_not_retracted")
            _withdraw_check_in(draft, phys.pulse_check_in)
        elif not phys.energized:
            # The pulse ended before the check: now the bolt must come back out.
            _start_bolt_check(draft, now, policy, BoltPosition.EXTENDED)
    elif (phys.bolt_expected is BoltPosition.EXTENDED and not phys.energized and retracted
          and draft.raise_alarm(Alarm.LOCK_FAULT)):
        draft.emit(EventType.LOCK_FAULT, Source.SYSTEM, None, "bolt_not_extended")


def _withdraw_check_in(draft: _Draft, member: str | None) -> None:
    """The lock sensor proves the bolt never retracted for this check-in: the member never got in,
    so the door withdraws it (a checkout, `withdrawn`) and the seat is free again."""
    draft.set_phys(pulse_check_in=None)
    session = draft.state.sessions.get(member) if member is not None else None
    if session is None or member is None or session.state is not SessionState.CHECKED_IN:
        return
    draft.state = draft.state.without(member)
    draft.emit(EventType.CHECKOUT, Source.SYSTEM, member, "unlock_fault", auto=True, withdrawn=True,
               checked_in_at=session.checked_in_at, overdue=False)


def _fire(draft: _Draft, active: bool, now: Now, policy: Policy) -> None:
    if active == draft.phys.fire:
        return
    draft.set_phys(fire=active)
    if active:
        draft.raise_alarm(Alarm.FIRE)
        draft.set_phys(held_due=None)
        draft.relay.append(Hold(True))
        draft.emit(EventType.UNLOCK, Source.FIRE, None, "fire_alarm", hold=True)
        return
    draft.clear_alarm(Alarm.FIRE, announce=False)
    draft.relay.append(Hold(False))
    draft.emit(EventType.FIRE_CLEARED, Source.FIRE)
    if draft.phys.pulse_until is None:
        draft.relay.append(Deenergize())
        _start_bolt_check(draft, now, policy, BoltPosition.EXTENDED)
    if draft.phys.door is DoorPosition.OPEN:
        # The door left open after the fire is held open from now on.
        draft.set_phys(held_due=now.mono + policy.door_held_seconds)


def _door(draft: _Draft, closed: bool, now: Now, policy: Policy) -> None:
    position = DoorPosition.CLOSED if closed else DoorPosition.OPEN
    if position is draft.phys.door:
        return
    draft.set_phys(door=position)
    phys = draft.phys
    if position is DoorPosition.OPEN:
        if phys.pulse_until is not None:
            draft.set_phys(pulse_opened=True)
        elif not (phys.fire or phys.exit_pressed) and draft.raise_alarm(Alarm.DOOR_FORCED):
            draft.emit(EventType.DOOR_FORCED, Source.SYSTEM)
        if not phys.fire:
            draft.set_phys(held_due=now.mono + policy.door_held_seconds)
        return
    draft.set_phys(held_due=None)
    draft.clear_alarm(Alarm.DOOR_FORCED)
    draft.clear_alarm(Alarm.DOOR_HELD)
    if phys.pulse_until is not None and phys.pulse_opened:
        # The member went through: lock again now instead of waiting out the pulse.
        _end_pulse(draft, now, policy)


def _bolt(draft: _Draft, retracted: bool, now: Now, policy: Policy) -> None:
    position = BoltPosition.RETRACTED if retracted else BoltPosition.EXTENDED
    if position is draft.phys.bolt:
        return
    draft.set_phys(bolt=position)
    if retracted:
        draft.set_phys(bolt_moved=True)
        draft.clear_alarm(Alarm.UNLOCK_FAULT)
        if not draft.phys.energized and draft.phys.bolt_due is None:
            # Retracted with the relay off: allow it the usual second, then it is a fault.
            _start_bolt_check(draft, now, policy, BoltPosition.EXTENDED)
    else:
        draft.clear_alarm(Alarm.LOCK_FAULT)


def _sensed(draft: _Draft, inp: Sensed, now: Now, policy: Policy) -> None:
    if inp.door_closed is not None:
        door = DoorPosition.CLOSED if inp.door_closed else DoorPosition.OPEN
        draft.set_phys(door=door)
        if door is DoorPosition.CLOSED:
            draft.clear_alarm(Alarm.DOOR_FORCED)
            draft.clear_alarm(Alarm.DOOR_HELD)
    if inp.bolt_retracted is not None:
        draft.set_phys(bolt=BoltPosition.RETRACTED if inp.bolt_retracted else BoltPosition.EXTENDED)
        if not inp.bolt_retracted:
            draft.clear_alarm(Alarm.LOCK_FAULT)
        else:
            _start_bolt_check(draft, now, policy, BoltPosition.EXTENDED)
    draft.set_phys(exit_pressed=inp.exit_pressed)
    was_fire = draft.phys.fire
    draft.set_phys(fire=False)  # let _fire see the edge from "off", whatever the journal said
    if inp.fire:
        _fire(draft, True, now, policy)
    elif was_fire:
        draft.set_phys(fire=True)
        _fire(draft, False, now, policy)
    elif Alarm.FIRE in draft.state.alarms:
        draft.clear_alarm(Alarm.FIRE, announce=False)


# --- scheduling -----------------------------------------------------------------------------


def next_due(state: DoorState, policy: Policy) -> tuple[float | None, float | None]:
    """When a Tick would next change something: (door time, monotonic time), either may be None."""
    door_times: list[float] = []
    for s in state.sessions.values():
        if not s.warned:
            door_times.append(s.deadline - policy.warning_lead_seconds)
        elif not s.overdue:
            door_times.append(s.deadline)
        elif policy.auto_checkout_after_seconds > 0:
            door_times.append(s.deadline + policy.auto_checkout_after_seconds)
    phys = state.physical
    mono_times = [t for t in (phys.pulse_until, phys.held_due, phys.bolt_due) if t is not None]
    return (min(door_times) if door_times else None, min(mono_times) if mono_times else None)
