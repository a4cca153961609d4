"""DoorCore: verifier + decision + journal together, with an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.clock import DoorClock
from controller.core import DoorCore
from controller.journal import Journal
from tests.helpers import NOW, code, make_config


class Clock:
    """Stands in for both the wall clock and the monotonic clock."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def door(tmp_path: Path) -> tuple[DoorCore, Clock, Clock]:
    wall, mono = Clock(NOW), Clock(100.0)
    config = make_config(tmp_path, door={"store": "shinjuku-3", "name": "main", "seats": 2,
                                         "session_limit_minutes": 60, "auto_checkout_after_minutes": 10})
    journal = Journal(config.storage.path)
    core = DoorCore(config, journal, DoorClock(0, wall=wall, monotonic=mono, synced_probe=lambda: True),
                    monotonic=mono)
    return core, wall, mono


def _advance(wall: Clock, mono: Clock, seconds: float) -> None:
    wall.t += seconds
    mono.t += seconds


def test_member_day(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    steps = [
        (code("m1", iat=int(wall.t)), "front", "entry", "check_in"),
        (code("m1", iat=int(wall.t)), "inside", "exit", "unlock"),
        (code("m1", iat=int(wall.t)), "front", "entry", "unlock"),
        (code("m1", iat=int(wall.t), act="checkout_begin", ttl=30), "remote", "remote", "checkout_begin"),
        (code("m1", iat=int(wall.t)), "inside", "exit", "unlock"),
        (code("m1", iat=int(wall.t), act="checkout", ttl=30), "remote", "remote", "checkout"),
    ]
    for text, reader, side, result in steps:
        _advance(wall, mono, 10)
        handled = core.present(text, reader, side)  # type: ignore[arg-type]
        assert handled.decision is not None and handled.decision.result == result
    late = core.present(code("m1", iat=int(wall.t)), "inside", "exit")
    assert late.decision is not None and late.decision.reason == "not_checked_in"
    assert core.seats()["available"] == 2 and core.seats()["symbol"] == "○"


def test_seats_and_symbols(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    symbols = []
    for m in ("a", "b", "c"):
        core.present(code(m, iat=int(wall.t)), "front", "entry")
        symbols.append(core.seats()["symbol"])
    assert symbols == ["△", "×", "×"]
    assert core.journal.events()[-1].reason == "full"


def test_same_presentation_and_replay(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    text = code("m1", iat=int(wall.t))
    assert core.present(text, "front", "entry").decision.ok  # type: ignore[union-attr]
    _advance(wall, mono, 2)
    assert core.present(text, "front", "entry").ignored
    assert core.present(text, "inside", "exit").decision.reason == "replayed"  # type: ignore[union-attr]
    _advance(wall, mono, 10)
    assert core.present(text, "front", "entry").decision.reason == "replayed"  # type: ignore[union-attr]


def test_a_denied_code_held_up_is_one_denial(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    expired = code("m1", iat=int(wall.t) - 1000, ttl=100)
    for _ in range(10):  # a camera sees it in every frame
        core.present(expired, "front", "entry")
        _advance(wall, mono, 0.1)
    assert [e.reason for e in core.journal.events()] == ["expired"]
    _advance(wall, mono, 6)
    core.present(expired, "front", "entry")
    assert len(core.journal.events()) == 2, "a new presentation after 5 s is a new denial"
    garbage = "OP1:!!!"
    core.present(garbage, "front", "entry")
    core.present(garbage, "front", "entry")
    assert [e.reason for e in core.journal.events()][-1:] == ["malformed"]
    assert core.journal.events()[-1].member is None


def test_commands_execute_once_and_redeliveries_get_the_first_answer(
    door: tuple[DoorCore, Clock, Clock],
) -> None:
    core, wall, mono = door
    core.present(code("m1", iat=int(wall.t)), "front", "entry")
    cmd = code("m1", iat=int(wall.t), act="checkout", ttl=60)
    first = core.present(cmd, "remote", "remote")
    assert first.decision is not None and first.decision.result == "checkout" and not first.redelivery
    seq = core.journal.last_seq()
    for delay in (1, 20):
        _advance(wall, mono, delay)
        again = core.present(cmd, "remote", "remote")
        assert again.redelivery and again.decision == first.decision
    assert core.journal.last_seq() == seq, "a redelivery journals nothing and executes nothing"
    # a denied command is spent too, and its redelivery gets the same denial
    denied_cmd = code("m2", iat=int(wall.t), act="unlock", ttl=60)
    d1 = core.present(denied_cmd, "remote", "remote")
    core.present(code("m2", iat=int(wall.t)), "front", "entry")  # m2 checks in meanwhile
    d2 = core.present(denied_cmd, "remote", "remote")
    assert d1.decision == d2.decision and d2.decision is not None and d2.decision.reason == "not_checked_in"


def test_command_ttl_is_shorter(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    handled = core.present(code("m1", iat=int(wall.t), act="check_in", ttl=120), "remote", "remote")
    assert handled.decision is not None and handled.decision.reason == "ttl_too_long"
    shown = core.present(code("m1", iat=int(wall.t), act="check_in", ttl=120), "front", "entry")
    assert shown.decision is not None and shown.decision.result == "check_in"


def test_revocation_while_inside(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    core.present(code("m1", iat=int(wall.t)), "front", "entry")
    assert core.set_revoked(5, ["m1"])
    assert not core.set_revoked(4, []), "an older list never replaces a newer one"
    _advance(wall, mono, 10)
    handled = core.present(code("m1", iat=int(wall.t)), "inside", "exit")
    assert handled.decision is not None and handled.decision.reason == "revoked"
    assert handled.events[0].member == "m1"
    assert core.exit_button().decision.unlock, "the exit button still lets anyone out"  # type: ignore[union-attr]
    assert core.set_revoked(6, [])
    assert core.present(code("m1", iat=int(wall.t)), "inside", "exit").decision.unlock  # type: ignore[union-attr]


def test_ticks_journal_overstay_and_auto_checkout(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    core.present(code("m1", iat=int(wall.t)), "front", "entry")
    seq = core.journal.last_seq()
    core.tick()
    assert core.journal.last_seq() == seq, "a tick with nothing due journals nothing"
    _advance(wall, mono, 3600 + 600)
    core.tick()
    types = [e.type for e in core.journal.events()][-3:]
    assert types == ["overstay_warning", "overstay", "checkout"]
    assert core.journal.events()[-1].fields["auto"] is True and core.seats()["occupied"] == 0


def test_clock_set_back_cannot_revive_old_codes(tmp_path: Path) -> None:
    """A door that saw time T keeps it across a restart, even if the wall clock says 1970."""
    config = make_config(tmp_path)
    wall, mono = Clock(NOW), Clock(0.0)
    j = Journal(config.storage.path)
    core = DoorCore(config, j, DoorClock(j.time_floor(), wall=wall, monotonic=mono), monotonic=mono)
    core.present(code("m1", iat=NOW), "front", "entry")
    j.close()

    old_code = code("m2", iat=NOW - 3600)  # a screenshot from an hour before
    wall.t = 0.0  # reboot without a clock
    j = Journal(config.storage.path)
    assert j.time_floor() >= NOW
    clock = DoorClock(j.time_floor(), wall=wall, monotonic=mono, synced_probe=lambda: True)
    core = DoorCore(config, j, clock, monotonic=mono)
    assert core.present(old_code, "front", "entry").decision.reason == "expired"  # type: ignore[union-attr]
    assert not core.clock.synced(), "a wall clock behind the floor is not synchronized"
