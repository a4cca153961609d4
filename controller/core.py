"""DoorCore: the verifier, the decision function and the journal, joined in one place.

The reactor (one thread) owns a DoorCore and calls it for everything that can
change the door's state. Every call journals the decision and its events in
one transaction and only then returns, so a caller that moves the relay on
`decision.unlock` never moves it for something the journal does not hold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from controller.clock import DoorClock
from controller.codes import (
    SAME_PRESENTATION_SECONDS,
    CodeVerifier,
    MemberCode,
    classify_reuse,
    used_code_expiry,
)
from controller.config import Config
from controller.decision import (
    Decision,
    DoorState,
    Event,
    ExitRequest,
    Input,
    Policy,
    Rejected,
    Request,
    Tick,
    next_due,
    next_state,
    vacancy_symbol,
)
from controller.journal import Journal, JournaledEvent, JournalError, UsedCode

log = logging.getLogger("doorctl.core")

Side = Literal["entry", "exit", "remote"]
JOURNAL_FAILED = Decision(False, reason="journal_error")


@dataclass(frozen=True)
class Handled:
    """What became of one input."""

    decision: Decision | None  # None: ignored (same presentation), nothing journaled
    events: list[JournaledEvent] = field(default_factory=list)
    code: MemberCode | None = None
    redelivery: bool = False  # a command already executed: `decision` is its first result

    @property
    def ignored(self) -> bool:
        return self.decision is None


class DoorCore:
    def __init__(
        self,
        config: Config,
        journal: Journal,
        clock: DoorClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        creds = config.credentials
        self.config = config
        self.journal = journal
        self.clock = clock or DoorClock(journal.time_floor())
        self.clock.raise_floor(journal.time_floor())
        self.policy = Policy.from_minutes(
            config.door.seats, config.door.session_limit_minutes, config.door.auto_checkout_after_minutes
        )
        self.verifier = CodeVerifier(
            creds.keys,
            issuer=creds.issuer,
            store=config.door.store,
            max_clock_skew_seconds=creds.max_clock_skew_seconds,
            max_code_ttl_seconds=creds.max_code_ttl_seconds,
            max_command_ttl_seconds=creds.max_command_ttl_seconds,
        )
        self.state: DoorState = journal.load_state()
        self.revoked: frozenset[str] = journal.revoked()
        self._monotonic = monotonic
        # A rejected code held in front of a camera is seen in every frame: one denial per
        # presentation, as for accepted codes. Keyed by (reader, text); monotonic seconds.
        self._recent_denials: dict[tuple[str, str], float] = {}
        # Called on the reactor thread after every commit, with what was journaled (the cloud
        # link drains its outbox and republishes seats and sessions from here).
        self.listeners: list[Callable[[list[JournaledEvent]], None]] = []

    def _notify(self, events: list[JournaledEvent]) -> None:
        for listener in self.listeners:
            try:
                listener(events)
            except Exception:
                log.exception("journal listener failed")

    # --- inputs -----------------------------------------------------------------------

    def present(self, text: str, reader: str, side: Side) -> Handled:
        """A code seen by a reader (or received as a remote command)."""
        now = self.clock.now()
        verdict = self.verifier.verify(text, now, revoked=self.revoked, command=side == "remote")
        code = verdict.code
        if not verdict.ok:
            if self._repeat_denial(reader, text):
                return Handled(None, code=code)
            cti = code.cti if code else None
            log.info("denied %s at %s: %s %s", verdict.member or "-", reader, verdict.reason, verdict.detail)
            return self._apply(Rejected(verdict.reason or "malformed", side, verdict.member, cti), now, code)

        assert code is not None
        prior = self.journal.used_code(code.cti)
        if side == "remote" and prior is not None and prior.result is not None:
            # QoS 1 redelivery of a command already executed: answer as the first time, however
            # soon it comes (the same-presentation window is for cameras, not commands).
            return Handled(Decision(**prior.result), code=code, redelivery=True)
        reuse = classify_reuse(
            prior.reader if prior else None, prior.accepted_at if prior else None, reader, now
        )
        if reuse == "ignored":
            return Handled(None, code=code)
        if reuse == "replayed":
            if self._repeat_denial(reader, text):
                return Handled(None, code=code)
            return self._apply(Rejected("replayed", side, code.member, code.cti), now, code)

        self.clock.raise_floor(code.iat)
        request = Request(code.member, side, code.act, code.cti)
        return self._apply(request, now, code, reader=reader)

    def exit_button(self) -> Handled:
        return self._apply(ExitRequest(), self.clock.now(), None)

    def tick(self) -> Handled:
        """Let time pass: warnings, overstays, auto-checkouts. Journals nothing when nothing is due."""
        now = self.clock.now()
        due = next_due(self.state, self.policy)
        if due is None or now < due:
            return Handled(Decision(True))
        return self._apply(Tick(), now, None)

    def record(self, *events: Event) -> list[JournaledEvent]:
        """Journal hardware and system events (alarms, watchdog trips): no session changes.

        A journal that refuses is logged; the alarm itself still stands in the door's status.
        """
        try:
            written = self.journal.commit(self.state, self.state, events, now=self.clock.now())
        except JournalError as exc:
            log.error("events %s not journaled: %s", [e.type for e in events], exc)
            return []
        for ev in written:
            log.info("event seq=%d %s source=%s %s", ev.seq, ev.type, ev.source, ev.fields or "")
        self._notify(written)
        return written

    def set_revoked(self, version: int, members: list[str]) -> bool:
        """Apply a revocation list; older versions than the one held are ignored."""
        current = self.journal.revocation_version()
        if current is not None and version < current:
            return False
        self.journal.set_revoked(version, members)
        self.revoked = frozenset(members)
        self.record(Event("revocation_applied", None, "system", None,
                          {"version": version, "count": len(members)}))
        return True

    # --- internals --------------------------------------------------------------------

    def _repeat_denial(self, reader: str, text: str) -> bool:
        mono = self._monotonic()
        if len(self._recent_denials) > 256:
            cutoff = mono - SAME_PRESENTATION_SECONDS
            self._recent_denials = {k: t for k, t in self._recent_denials.items() if t >= cutoff}
        key = (reader, text)
        first = self._recent_denials.get(key)
        if first is not None and mono - first <= SAME_PRESENTATION_SECONDS:
            return True
        self._recent_denials[key] = mono
        return False

    def _apply(self, inp: Input, now: float, code: MemberCode | None, reader: str | None = None) -> Handled:
        outcome = next_state(self.state, inp, now, self.policy)
        decision = outcome.decision
        used: UsedCode | None = None
        if code is not None and isinstance(inp, Request):
            remote = inp.source == "remote"
            # A code shown to a reader is spent only when it did something; a denied one (the
            # store was full) may be shown again. A command's cti is spent either way, so a
            # redelivery gets the first answer.
            if decision.ok or remote:
                result = (
                    {"ok": decision.ok, "unlock": decision.unlock, "result": decision.result,
                     "reason": decision.reason}
                    if remote
                    else None
                )
                expiry = used_code_expiry(code, self.verifier.skew)
                used = UsedCode(code.cti, reader or inp.source, now, expiry, result)
        try:
            events = self.journal.commit(
                self.state, outcome.state, outcome.events, now=now, used_code=used, floor=self.clock.floor
            )
        except JournalError as exc:
            # Nothing was written, so nothing may take effect: no unlock, state unchanged.
            log.error("decision not taken, journal refused it: %s", exc)
            return Handled(JOURNAL_FAILED, code=code)
        self.state = outcome.state
        for ev in events:
            log.info("event seq=%d %s member=%s source=%s reason=%s", ev.seq, ev.type, ev.member,
                     ev.source, ev.reason)
        if events:
            self._notify(events)
        return Handled(decision, events, code)

    # --- views ------------------------------------------------------------------------

    def seats(self) -> dict[str, object]:
        available = self.state.available(self.policy)
        return {
            "store": self.config.door.store,
            "capacity": self.policy.seats,
            "occupied": self.state.occupied,
            "available": available,
            "symbol": vacancy_symbol(available),
        }
