"""DoorCore: runs the pure door machine and applies its effects, in one fixed order.

The reactor (one thread) owns a DoorCore and hands it every input. For each input:

1. `next_state` decides (pure).
2. Effects are applied in this order:
   * a `Journal` effect that *gates* (a code's decision) is written first; if the disk refuses,
     nothing of that decision takes effect: the door enters its degraded state (`journal_error`)
     and the code is decided again, which refuses it `journal_error`;
   * the relay (`Energize`, `Deenergize`, `Hold`);
   * a `Journal` effect that does not gate (exit button, fire, sensors, alarms) is written after
     the relay moved: the door opens whatever the disk does. If the write fails, the events wait
     in memory (bounded) and are written when the journal works again;
   * listeners (the cloud link: outbox drain, retained status), after the relay.

Admission sits in front of the machine (controller.admission: the same-presentation window, the
verifier, the used-code memory, the clock and presence rules, in the contract's order): the machine
sees an admitted code (`CodeRequest`) or the reason it was refused (`CodeRejected`).

A code from a reader touches the journal twice on its way: one read (the used-code memory, in
admission) and one commit (the decision, its events and the spent code, before the relay moves); the
cloud link gets the written events in memory and marks them delivered on their PUBACK (a third
write, batched, after the broker has them).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, assert_never

from controller.admission import AdmissionRules, Decided, Ignored, Moment, Redelivered, admit
from controller.clock import DoorClock
from controller.config import Config
from controller.decision import (
    CodeRejected,
    CodeRequest,
    Decision,
    Deenergize,
    DoorState,
    Energize,
    Event,
    Hold,
    Input,
    Journal,
    JournalHealth,
    Now,
    Policy,
    Publish,
    Step,
    Tick,
    next_due,
    next_state,
)
from controller.journal import Journal as JournalFile
from controller.journal import JournaledEvent, JournalError, UsedCode
from drivers.presentation import PresentationWindow
from wire.codes import CodeVerifier, MemberCode, used_code_expiry
from wire.payloads import Seats, SessionInfo
from wire.presence import PresenceCodes
from wire.rules import rfc3339
from wire.vocab import Deny, Side

log = logging.getLogger("doorctl.core")

# Events that could not be journaled (disk full) wait in memory for the disk, up to this many;
# past it the oldest are dropped with an error line (each was also logged when it happened).
MAX_UNJOURNALED = 10_000


class RelayPort(Protocol):
    """What the core needs of the relay guard."""

    def energize(self) -> None: ...
    def release(self) -> None: ...
    def hold(self, active: bool) -> None: ...


def policy_for(config: Config) -> Policy:
    door, lock = config.door, config.lock
    return Policy(
        seats=door.seats,
        session_limit_seconds=door.session_limit_minutes * 60.0,
        auto_checkout_after_seconds=door.auto_checkout_after_minutes * 60.0,
        unlock_seconds=float(lock.unlock_seconds),
        door_held_seconds=float(lock.door_held_seconds),
        has_lock_sensor=lock.lock_sensor_pin is not None,
        presence_required=config.presence.require if config.presence is not None else frozenset(),
    )


def verifier_for(config: Config) -> CodeVerifier:
    creds = config.credentials
    return CodeVerifier(
        creds.keys,
        issuer=creds.issuer,
        store=config.door.store,
        max_clock_skew_seconds=creds.max_clock_skew_seconds,
        max_code_ttl_seconds=creds.max_code_ttl_seconds,
        max_command_ttl_seconds=creds.max_command_ttl_seconds,
        command_clock_skew_seconds=creds.command_clock_skew_seconds,
    )


@dataclass(frozen=True)
class Handled:
    """What became of one input."""

    decision: Decision | None  # None: ignored (the same presentation), nothing journaled
    events: list[JournaledEvent] = field(default_factory=list)
    code: MemberCode | None = None
    redelivery: bool = False  # a command already decided: `decision` is its first answer

    @property
    def ignored(self) -> bool:
        return self.decision is None


class DoorCore:
    def __init__(
        self,
        config: Config,
        journal: JournalFile,
        relay: RelayPort,
        clock: DoorClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        presence: PresenceCodes | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.relay = relay
        self.clock = clock or DoorClock(journal.time_floor())
        self.clock.raise_floor(journal.time_floor())
        self.policy = policy_for(config)
        # The codes the door's screen shows (contract §9); None without [presence] or its secret,
        # and then no command carries presence.
        self.presence = presence
        self.verifier = verifier_for(config)
        self.rules = AdmissionRules(self.verifier, config.credentials.commands_need_synced_clock, presence,
                                    self.policy.presence_required)
        self.state: DoorState = journal.load_state()
        self._committed: DoorState = self.state  # what the journal holds
        self._unjournaled: deque[Event] = deque()
        self.revoked: frozenset[str] = journal.revoked()
        # Read by the revocation verifier's thread to skip lists that are not newer.
        self.revocation_version: int | None = journal.revocation_version()
        self._monotonic = monotonic
        self._presentations = PresentationWindow()
        if journal.unavailable is not None:
            # Started on a stand-in (the file cannot be opened): degraded from the first moment.
            self.state = next_state(self.state, JournalHealth(False, journal.unavailable), self.now(),
                                    self.policy).state
        # Called on the reactor thread after the relay moved, with what was journaled (the cloud
        # link drains its outbox from here) ...
        self.listeners: list[Callable[[list[JournaledEvent]], None]] = []
        # ... and when what the status shows changed.
        self.on_publish: list[Callable[[], None]] = []

    def now(self) -> Now:
        return Now(self.clock.now(), self._monotonic())

    # --- inputs -----------------------------------------------------------------------

    def present(self, text: str, reader: str, side: Side) -> Handled:
        """A code seen by a reader, or received as a remote command (side REMOTE): admission
        (controller.admission, the whole order in one place), then the pure function."""
        now = self.now()
        admission = admit(text, reader, side, self.rules, Moment(now.door, now.mono, self.revoked,
                                                                 self.clock.synced),
                          self.journal.used_code, self._presentations)
        match admission:
            case Ignored():
                return Handled(None)
            case Redelivered(decision=decision, code=code):
                return Handled(decision, code=code, redelivery=True)
            case Decided(request=request, code=code, detail=detail):
                if isinstance(request, CodeRequest):
                    assert code is not None
                    self.clock.raise_floor(code.iat)  # the issuer signed it: time is at least that
                else:
                    log.info("denied %s at %s: %s %s", request.member or "-", reader, request.reason,
                             detail)
                return self._decide(request, code, reader)
            case _:
                assert_never(admission)

    def handle(self, inp: Input) -> Handled:
        """A pin edge, reader or journal health, a relay trip, a tick."""
        decision, events = self._step(inp)
        return Handled(decision, events)

    def tick(self) -> Handled:
        """Let time pass: pulse ends, alarm timers, session deadlines; and the journal's health."""
        self.clock.observe()
        self._probe_journal()
        now = self.now()
        door_due, mono_due = next_due(self.state, self.policy)
        if (door_due is None or now.door < door_due) and (mono_due is None or now.mono < mono_due):
            return Handled(Decision(True))
        return self.handle(Tick())

    def next_mono_due(self) -> float | None:
        return next_due(self.state, self.policy)[1]

    def set_revoked(self, version: int, members: frozenset[str]) -> None:
        """Store and apply a verified revocation list (the caller checked signature and version)."""
        self.journal.set_revoked(version, members)
        self.revocation_stored(version, members)

    def revocation_stored(self, version: int, members: frozenset[str]) -> None:
        """A verified list is in the journal (written by the revocation thread): apply it."""
        self.revoked = members
        self.revocation_version = version

    # --- applying a step ----------------------------------------------------------------

    def _decide(self, inp: CodeRequest | CodeRejected, code: MemberCode | None, reader: str) -> Handled:
        decision, events = self._step(inp, code=code, reader=reader)
        return Handled(decision, events, code)

    def _step(
        self, inp: Input, *, code: MemberCode | None = None, reader: str | None = None
    ) -> tuple[Decision | None, list[JournaledEvent]]:
        now = self.now()
        step = next_state(self.state, inp, now, self.policy)
        journal = next((e for e in step.effects if isinstance(e, Journal)), None)
        decision = step.decision
        used = self._spend(inp, code, decision, reader, now) if decision is not None else None
        written: list[JournaledEvent] = []
        if journal is not None and journal.gates:
            try:
                written = self._commit(step.state, journal.events, now, used)
            except JournalError as exc:
                # Nothing was written, so nothing of this decision may happen: degrade, decide again.
                log.error("journal refused a decision, the door is degraded: %s", exc)
                self._degrade(str(exc), now)
                return self._step(inp, code=code, reader=reader)
        self._apply(step)
        if journal is not None and not journal.gates:
            written = self._commit_after(step.state, journal.events, now, used)
        self._announce(step, written)
        return decision, written

    def _apply(self, step: Step) -> None:
        """Adopt a step's state and apply its relay effects."""
        self.state = step.state
        for effect in step.effects:
            match effect:
                case Energize():
                    self.relay.energize()
                case Deenergize():
                    self.relay.release()
                case Hold(active=active):
                    self.relay.hold(active)
                case _:
                    pass

    def _announce(self, step: Step, written: list[JournaledEvent]) -> None:
        for ev in written:
            log.info("event seq=%d %s member=%s source=%s reason=%s", ev.seq, ev.type, ev.member,
                     ev.source, ev.reason)
        if written:
            for listener in self.listeners:
                self._guarded(listener, written)
        if any(isinstance(e, Publish) for e in step.effects):
            for publish in self.on_publish:
                self._guarded(publish)

    @staticmethod
    def _guarded(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("listener %r failed; the door goes on", fn)

    def _spend(
        self, inp: Input, code: MemberCode | None, decision: Decision, reader: str | None, now: Now
    ) -> UsedCode | None:
        """The used-code row this decision writes, if any.

        A code shown to a reader is spent only when it did something: one refused because the store
        was full may be shown again. A command's cti is spent either way, with its answer, so a
        redelivery gets the first answer.
        """
        if code is None or not isinstance(inp, CodeRequest | CodeRejected):
            return None
        remote = inp.side is Side.REMOTE
        replayed = isinstance(inp, CodeRejected) and inp.reason is Deny.REPLAYED  # spent before
        if replayed or not (decision.ok or remote):
            return None
        result = (
            {"ok": decision.ok, "unlock": decision.unlock, "result": decision.result,
             "reason": decision.reason}
            if remote
            else None
        )
        return UsedCode(code.cti, reader or inp.side, now.door, used_code_expiry(code, self.verifier.skew),
                        result)

    def _commit(self, after: DoorState, events: tuple[Event, ...], now: Now,
                used: UsedCode | None) -> list[JournaledEvent]:
        written = self.journal.commit(self._committed, after, events, now=now.door, used_code=used,
                                      floor=self.clock.floor)
        self._committed = after
        return written

    def _commit_after(self, after: DoorState, events: tuple[Event, ...], now: Now,
                      used: UsedCode | None) -> list[JournaledEvent]:
        """Journal what already happened; on failure keep it for later and degrade."""
        try:
            pending = (*self._unjournaled, *events)
            written = self._commit(after, pending, now, used)
        except JournalError as exc:
            for ev in events:
                log.error("not journaled (kept until the journal works): %s member=%s source=%s reason=%s",
                          ev.type, ev.member, ev.source, ev.reason)
                self._keep(ev)
            if self.state.journal_ok:
                log.error("journal write failed, the door is degraded: %s", exc)
                self._degrade(str(exc), now)
            return []
        self._unjournaled.clear()
        return written

    def _degrade(self, reason: str, now: Now) -> None:
        """Enter the degraded state (journal_error) and tell whoever shows the status."""
        degraded = next_state(self.state, JournalHealth(False, reason), now, self.policy)
        self._apply(degraded)
        self._announce(degraded, [])

    def _keep(self, ev: Event) -> None:
        if len(self._unjournaled) >= MAX_UNJOURNALED:
            dropped = self._unjournaled.popleft()
            log.error("dropping an unjournaled %s event: over %d waiting", dropped.type, MAX_UNJOURNALED)
        self._unjournaled.append(ev)

    def _probe_journal(self) -> None:
        """Once a tick: is the journal file still ours, and does a degraded journal work again?"""
        if self.journal.unavailable is not None:
            if not self.journal.reopen():
                return
            self._adopt_reopened_journal()
        try:
            self.journal.check_identity()
        except JournalError as exc:
            if self.journal.restore_file():
                log.warning("journal file was deleted under the door; written back from the open copy")
            elif self.state.journal_ok:
                log.error("%s", exc)
                self._degrade(str(exc), self.now())
                return
        if self.state.journal_ok:
            return
        now = self.now()
        try:
            written = self._commit(self.state, tuple(self._unjournaled), now, None)
        except JournalError:
            return
        self._unjournaled.clear()
        self._announce(Step(self.state, ()), written)
        log.warning("journal writes succeed again: %d waiting events written", len(written))
        self.handle(JournalHealth(True))

    def _adopt_reopened_journal(self) -> None:
        """The journal file opened at last: take its sessions, standing alarms, revocations and time
        floor; what happened meanwhile (the waiting events, the live alarms) is written next."""
        restored = self.journal.load_state()
        self.state = replace(self.state, sessions=restored.sessions,
                             alarms=self.state.alarms | restored.alarms)
        self._committed = restored
        self.revoked = self.journal.revoked()
        self.revocation_version = self.journal.revocation_version()
        self.clock.raise_floor(self.journal.time_floor())
        log.warning("journal %s opened at last: %d sessions restored", self.journal.path,
                    len(restored.sessions))

    # --- views ------------------------------------------------------------------------

    def seats(self) -> Seats:
        return Seats(self.config.door.store, self.policy.seats, self.state.occupied,
                     rfc3339(self.clock.now()),
                     limit_minutes=self.config.door.session_limit_minutes)

    def sessions(self) -> dict[str, SessionInfo]:
        """The live sessions as the wire shows them, with the door's own warning and auto-checkout
        times, so the member app shows this door's rule whatever its limit."""
        policy = self.policy
        auto = policy.auto_checkout_after_seconds
        return {
            member: SessionInfo(member, s.state, rfc3339(s.checked_in_at), rfc3339(s.deadline), s.overdue,
                                warning_at=rfc3339(s.deadline - policy.warning_lead_seconds),
                                auto_checkout_at=rfc3339(s.deadline + auto) if auto > 0 else None)
            for member, s in self.state.sessions.items()
        }

    @property
    def unjournaled(self) -> int:
        return len(self._unjournaled)
