"""Lock timing through the real daemon, gpiozero pins and the simulated board, with a real journal.

A thin set: what only real threads and real time show (the relay moves at once, the guard drops
a relay the loop forgot, the fire hold outlasts the bound). The lock's rules themselves are
tested on the pure function with a fake clock (tests/test_decision.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.gpio import DoorPins
from hwsim.board import SimBoard
from hwsim.pins import SimFactory
from hwsim.runtime import board_wiring
from hwsim.server import LocalLink
from tests.helpers import make_config
from tests.rig import Rig, relay_on_spans, wait_for
from wire.vocab import Alarm, LockStatus

# Seconds past max_unlock_seconds the relay may stay on: the guard's thread waking on a loaded
# 2-core machine (measured well under 0.05 s; the margin keeps the test from failing under load).
MAX_OVERRUN = 0.2


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_exit_button_pulses_for_unlock_seconds(rig: Rig) -> None:
    t0 = time.monotonic()
    rig.press_exit()
    assert wait_for(lambda: rig.board.state()["bolt"] == "retracted")
    assert wait_for(lambda: not rig.board.relay_energized, 2)
    ((on, off),) = relay_on_spans(rig.board, t0)
    # From the board's own history: the button's edge and the relay's, both stamped by the board.
    pressed = next(c.t for c in rig.board.changes("exit_button", t0) if c.level)
    assert on - pressed < 0.1, "the relay moves at once"
    # Ends by the pulse's own timer, well before the guard's 1 s bound (no trip event below).
    assert off is not None and 0.45 <= off - on < 1.0
    assert wait_for(lambda: rig.event_types() == ["unlock"])
    assert rig.events("unlock")[0].source == "button"


def test_pulse_ends_early_once_the_door_opened_and_closed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, unlock_seconds=3, max_unlock_seconds=5)
    try:
        t0 = time.monotonic()
        rig.press_exit()
        assert wait_for(lambda: rig.board.state()["bolt"] == "retracted")
        rig.board.set_door(True)
        time.sleep(0.1)
        rig.board.set_door(False)
        assert wait_for(lambda: not rig.board.relay_energized, 1)
        ((on, off),) = relay_on_spans(rig.board, t0)
        assert off is not None and off - on < 0.5
        assert "door_forced" not in rig.event_types()
    finally:
        rig.close()


def test_door_forced_within_a_second(rig: Rig) -> None:
    rig.board.set_door(True)
    # Raised on the door's edge itself, not by a later timer: within the 1 s the alarm promises
    # even on a loaded machine (the pure function's test pins the rule itself, with a fake clock).
    assert wait_for(lambda: "door_forced" in rig.event_types(), 1.0)
    assert rig.on_reactor(lambda: Alarm.DOOR_FORCED in rig.core.state.alarms)
    rig.board.set_door(False)
    assert wait_for(lambda: rig.on_reactor(lambda: not rig.core.state.alarms))


def test_unlock_fault_when_the_bolt_is_jammed(rig: Rig) -> None:
    rig.board.set_jammed(True)
    rig.press_exit()
    assert wait_for(lambda: "unlock_fault" in rig.event_types(), 3)
    assert rig.on_reactor(lambda: rig.core.state.lock) is LockStatus.JAMMED
    rig.board.set_jammed(False)
    rig.press_exit()
    assert wait_for(lambda: rig.on_reactor(lambda: rig.core.state.lock) is not LockStatus.JAMMED)


def test_fire_holds_the_door_open_beyond_the_bound(rig: Rig) -> None:
    t0 = time.monotonic()
    rig.board.set_input("fire_alarm", True)
    assert wait_for(lambda: rig.board.relay_energized)
    time.sleep(1.6)  # past max_unlock_seconds (1.0)
    assert rig.board.relay_energized, "the fire input holds the relay"
    rig.board.set_door(True)
    time.sleep(0.1)
    rig.board.set_input("fire_alarm", False)
    assert wait_for(lambda: not rig.board.relay_energized, 1)
    ((on, off),) = relay_on_spans(rig.board, t0)
    assert off is not None and off - on > 1.5
    # The relay moves first, the journal follows (contract §3): the barrier is the event itself, and
    # anything the fire's end could have raised is journaled with it or before.
    assert wait_for(lambda: "fire_cleared" in rig.event_types(), 5)
    types = rig.event_types()
    assert "door_forced" not in types and "relay_watchdog" not in types
    assert [e.source for e in rig.events("unlock")] == ["fire"]


def test_fire_active_at_boot_holds_the_relay(tmp_path: Path) -> None:
    board = SimBoard(board_wiring(make_config(tmp_path, lock={"relay_pin": "GPIO17",
                                                              "fire_alarm_pin": "GPIO23"}).lock.wiring))
    board.set_input("fire_alarm", True)
    rig = Rig(tmp_path, board=board)
    try:
        assert wait_for(lambda: board.relay_energized)
    finally:
        rig.close()


def test_guard_drops_the_relay_when_the_loop_hangs(rig: Rig) -> None:
    t0 = time.monotonic()
    rig.press_exit()
    assert wait_for(lambda: rig.board.relay_energized)
    rig.reactor.post(lambda: time.sleep(2.5))  # the loop hangs (a stuck disk, a bug)
    assert wait_for(lambda: not rig.board.relay_energized, 2)
    ((on, off),) = relay_on_spans(rig.board, t0)
    # The pulse would have ended at 0.5 s, but the loop is stuck: the guard ends it at 1.0 s.
    assert off is not None and 0.95 <= off - on <= 1.0 + MAX_OVERRUN
    assert wait_for(lambda: "relay_watchdog" in rig.event_types(), 4), "journaled once the loop is back"
    (trip,) = rig.events("relay_watchdog")
    assert trip.fields["on_seconds"] >= 0.95


def test_a_raising_handler_does_not_stop_the_door(rig: Rig) -> None:
    def broken() -> None:
        raise RuntimeError("handler bug")

    for _ in range(3):
        rig.reactor.post(broken)
    t0 = time.monotonic()
    rig.press_exit()
    assert wait_for(lambda: rig.board.relay_energized)
    rig.reactor.post(broken)
    assert wait_for(lambda: not rig.board.relay_energized, 2)
    ((on, off),) = relay_on_spans(rig.board, t0)
    assert off is not None and off - on <= 0.6, "the pulse still ends on time"


def test_members_in_a_row_keep_the_door_open_without_a_watchdog_trip(rig: Rig) -> None:
    t0 = time.monotonic()
    for _ in range(8):  # a queue at the door: each unlock restarts the pulse
        rig.press_exit()
        time.sleep(0.27)
    last = time.monotonic()
    assert wait_for(lambda: not rig.board.relay_energized, 2)
    ((on, off),) = relay_on_spans(rig.board, t0)
    assert off is not None and off - on > 1.0, "on past max_unlock_seconds, one request after another"
    assert off - last < 0.6, "ends one pulse after the last request"
    assert "relay_watchdog" not in rig.event_types()


def test_start_drives_a_relay_left_on_off_without_pulsing(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    board = SimBoard(board_wiring(config.lock.wiring))
    board.write(17, True)  # a previous process died with the relay on
    t0 = time.monotonic()
    pins = DoorPins.open(config.lock.wiring, SimFactory(LocalLink(board)))
    assert not board.relay_energized
    assert [c.level for c in board.changes("relay", t0)] == [False], "one write: off"
    pins.close()


def test_a_bolt_jammed_retracted_is_a_lock_fault(rig: Rig) -> None:
    rig.press_exit()
    assert wait_for(lambda: rig.board.state()["bolt"] == "retracted")
    rig.board.set_jammed(True)  # stuck open: it no longer follows the relay back out
    assert wait_for(lambda: not rig.board.relay_energized, 2)
    assert wait_for(lambda: "lock_fault" in rig.event_types(), 3)
    assert rig.on_reactor(lambda: rig.core.state.lock) is LockStatus.JAMMED
    rig.board.set_jammed(False)
    rig.press_exit()  # the bolt moves again: retracts, then extends after the pulse
    assert wait_for(lambda: rig.on_reactor(lambda: rig.core.state.lock) is LockStatus.LOCKED, 3)


def test_a_door_left_open_after_a_fire_is_held(rig: Rig) -> None:
    rig.board.set_input("fire_alarm", True)
    assert wait_for(lambda: rig.board.relay_energized)
    rig.board.set_door(True)
    time.sleep(0.2)
    rig.board.set_input("fire_alarm", False)
    assert wait_for(lambda: "door_held" in rig.event_types(), 3), rig.event_types()
    assert "door_forced" not in rig.event_types()
