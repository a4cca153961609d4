"""The door's admission: whether a code seen or a command received reaches the session rules, and if
not, why. One stage, in the order the contract gives, so reading `admit` tells why any code was
refused:

0. the same presentation (a reader's code seen again within 5 s): ignored, nothing journaled;
1. contract §1's verifier: `malformed`, `unknown_key`, `bad_signature`, `wrong_issuer`,
   `ttl_too_long`, `not_yet_valid`, `expired`, `wrong_store`, `revoked` (wire.codes);
2. the used-code memory: a command decided before gets its first answer (QoS 1 redelivery, §4),
   even one the verifier refused; any other second use is `replayed`;
3. `clock_unsynced`: a command while the door cannot tell the time (the door's own rule, appendix);
4. `not_present`: a command for an act that needs presence without a code the door's screen
   showed lately (§9, after `replayed`).

What passes is a `CodeRequest` for the pure `next_state`, which then applies the door's condition
(`journal_error`) and the session rules (§3). Everything admission reads is passed in (the clock's
readings, the revocation list, the used-code memory as a lookup); the one state it keeps, the
same-presentation window, is handed to it by its owner, the reactor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.decision import CodeRejected, CodeRequest, Decision
from controller.journal import UsedCode
from drivers.presentation import PresentationWindow
from wire.codes import CodeVerifier, MemberCode
from wire.presence import PresenceCodes
from wire.vocab import VERIFIER_ORDER, Act, Deny, Side

# The door's whole order: the contract's (§1, §9) with the door's clock rule before presence.
ADMISSION_ORDER: tuple[Deny, ...] = (*VERIFIER_ORDER[:-1], Deny.CLOCK_UNSYNCED, Deny.NOT_PRESENT)


@dataclass(frozen=True, slots=True)
class AdmissionRules:
    """The configured rules admission applies (from the config, fixed while the door runs)."""

    verifier: CodeVerifier
    commands_need_synced_clock: bool
    presence: PresenceCodes | None  # None: no [presence], or its secret is unavailable
    presence_required: frozenset[Act]


@dataclass(frozen=True, slots=True)
class Moment:
    """What the door knows as the code arrives."""

    door_time: float
    mono: float
    revoked: frozenset[str]
    clock_synced: Callable[[], bool]  # asked only for a command that needs it


@dataclass(frozen=True, slots=True)
class Ignored:
    """The same presentation: no decision, no event."""


@dataclass(frozen=True, slots=True)
class Redelivered:
    """A command the door decided before: its first answer, nothing done again."""

    decision: Decision
    code: MemberCode


@dataclass(frozen=True, slots=True)
class Decided:
    """To the pure function: a request (admitted) or the reason it was refused."""

    request: CodeRequest | CodeRejected
    code: MemberCode | None
    detail: str = ""  # the verifier's words, for the log

    @property
    def admitted(self) -> bool:
        return isinstance(self.request, CodeRequest)


Admission = Ignored | Redelivered | Decided


def admit(text: str, reader: str, side: Side, rules: AdmissionRules, moment: Moment,
          used: Callable[[bytes], UsedCode | None], recent: PresentationWindow) -> Admission:
    remote = side is Side.REMOTE
    # 0. A camera sees the phone in many frames: one decision per presentation. Commands are not
    # presentations: a redelivered command gets its first answer below, however soon.
    if not remote and recent.seen_recently((reader, text), moment.mono):
        return Ignored()
    # 1. Contract §1, up to `revoked`.
    verdict = rules.verifier.verify(text, moment.door_time, revoked=moment.revoked, command=remote)
    code = verdict.code
    # 2. The used-code memory (the journal's, one read), once the signature says whose code it is. A
    # command answered before gets that answer, whatever it was (a refused one too): a QoS 1
    # redelivery is never decided twice.
    prior = used(code.cti) if code is not None else None
    if remote and code is not None and prior is not None and prior.result is not None:
        return Redelivered(Decision(**prior.result), code)
    if not verdict.ok or code is None:
        cti = code.cti if code is not None else None
        return Decided(CodeRejected(verdict.reason or Deny.MALFORMED, side, verdict.member, cti), code,
                       verdict.detail)

    def refuse(reason: Deny) -> Decided:
        return Decided(CodeRejected(reason, side, code.member, code.cti), code)

    if prior is not None:  # any other second use
        return refuse(Deny.REPLAYED)
    if remote:
        # 3. Without a synchronized clock the door cannot tell a fresh command from one queued at
        # the broker for minutes: it refuses rather than guess.
        if rules.commands_need_synced_clock and not moment.clock_synced():
            return refuse(Deny.CLOCK_UNSYNCED)
        # 4. The phone did not scan this door's screen lately (a code shown to a camera never
        # needs it: the door sees the phone).
        act = code.act or Act.UNLOCK
        if act in rules.presence_required and not (
                rules.presence is not None and rules.presence.accepts(code.presence, moment.door_time)):
            return refuse(Deny.NOT_PRESENT)
    return Decided(CodeRequest(code.member, side, code.act, code.cti), code)
