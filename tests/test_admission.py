"""The door's admission in one stage: the contract's order (§1, §4, §9) with the door's clock rule,
each refusal the first that applies, and the same presentation ignored before anything is checked."""

from __future__ import annotations

import secrets
from pathlib import Path

from controller.admission import ADMISSION_ORDER, AdmissionRules, Decided, Ignored, Moment, Redelivered, admit
from controller.core import verifier_for
from controller.decision import CodeRejected
from controller.journal import UsedCode
from drivers.presentation import PresentationWindow
from tests.helpers import NOW, PRIVATE, code, make_config
from wire.codes import mint_code
from wire.presence import PresenceCodes
from wire.vocab import Act, Deny, Side

CODES = PresenceCodes(b"p" * 32, "shinjuku-3", "main", 10, 30)
RULES = AdmissionRules(verifier_for(make_config(Path("/nonexistent"))), True, CODES,
                       frozenset({Act.CHECK_IN, Act.UNLOCK}))


def command(act: str = "unlock", *, iat: int = NOW, presence: str | None = None) -> str:
    return mint_code(PRIVATE["k1"], kid="k1", issuer="officepass", member="m1", iat=iat, exp=iat + 15,
                     cti=secrets.token_bytes(16), act=act, presence=presence)


def reason(text: str, side: Side = Side.REMOTE, *, synced: bool = True, used: UsedCode | None = None,
           revoked: frozenset[str] = frozenset()) -> Deny | None:
    found = admit(text, "r", side, RULES, Moment(float(NOW), 50.0, revoked, lambda: synced),
                  lambda _cti: used, PresentationWindow())
    assert isinstance(found, Decided)
    return found.request.reason if isinstance(found.request, CodeRejected) else None


def test_the_order_is_the_contracts_with_the_clock_rule_before_presence() -> None:
    assert ADMISSION_ORDER[-3:] == (Deny.REPLAYED, Deny.CLOCK_UNSYNCED, Deny.NOT_PRESENT)
    spent = UsedCode(b"x" * 16, "r", NOW, NOW + 60)
    # Everything wrong at once after the signature: the earliest check names it.
    assert reason(command(), synced=False, used=spent, revoked=frozenset({"m1"})) is Deny.REVOKED
    assert reason(command(), synced=False, used=spent) is Deny.REPLAYED
    assert reason(command(), synced=False) is Deny.CLOCK_UNSYNCED
    assert reason(command()) is Deny.NOT_PRESENT
    assert reason(command(presence=CODES.current(NOW - 3))) is None
    assert reason(command(iat=NOW - 100, presence=CODES.current(NOW))) is Deny.EXPIRED


def test_a_command_answered_before_gets_that_answer_even_when_refused() -> None:
    first = {"ok": False, "unlock": False, "result": None, "reason": Deny.EXPIRED}
    answered = UsedCode(b"x" * 16, "remote", NOW, NOW + 60, first)
    found = admit(command(iat=NOW - 100), "remote", Side.REMOTE, RULES,
                  Moment(float(NOW), 50.0, frozenset(), lambda: True), lambda _cti: answered,
                  PresentationWindow())
    assert isinstance(found, Redelivered) and found.decision.reason is Deny.EXPIRED


def test_the_same_presentation_is_ignored_before_anything_is_checked() -> None:
    window = PresentationWindow()
    text = code("m1")
    moment = Moment(float(NOW), 50.0, frozenset(), lambda: True)
    assert isinstance(admit(text, "front", Side.ENTRY, RULES, moment, lambda _cti: None, window), Decided)
    again = Moment(float(NOW), 54.0, frozenset(), lambda: True)
    assert isinstance(admit(text, "front", Side.ENTRY, RULES, again, lambda _cti: None, window), Ignored)
    # A reader's code never needs presence and never asks the clock.
    unsynced = Moment(float(NOW), 60.0, frozenset(), lambda: False)
    fresh = admit(code("m1"), "front", Side.ENTRY, RULES, unsynced, lambda _cti: None, window)
    assert isinstance(fresh, Decided) and fresh.admitted
