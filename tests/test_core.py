"""DoorCore: verifier, the pure machine, the journal (a real SQLite file) and the relay guard on a
simulated board, together, with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.clock import DoorClock
from controller.config import Config
from controller.core import DoorCore
from controller.decision import ExitButton
from controller.journal import Journal
from tests.helpers import NOW, code, make_config
from tests.rig import Relay
from tests.small_fs import fill, small_tmpfs
from wire.presence import PresenceCodes
from wire.vocab import Alarm, Deny, Side

ENTRY, EXIT, REMOTE = Side.ENTRY, Side.EXIT, Side.REMOTE


class Clock:
    """Stands in for both the wall clock and the monotonic clock."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_core(config: Config, wall: Clock, mono: Clock, relay: Relay, synced: bool = True,
              presence: PresenceCodes | None = None) -> DoorCore:
    journal = Journal(config.storage.path)
    clock = DoorClock(journal.time_floor(), wall=wall, monotonic=mono, synced_probe=lambda: synced)
    return DoorCore(config, journal, relay.guard, clock, monotonic=mono, presence=presence)


DOOR = {"store": "shinjuku-3", "name": "main", "seats": 2, "session_limit_minutes": 60,
        "auto_checkout_after_minutes": 10}


@pytest.fixture
def door(tmp_path: Path) -> Iterator[tuple[DoorCore, Clock, Clock]]:
    wall, mono = Clock(NOW), Clock(100.0)
    config = make_config(tmp_path, door=DOOR)
    relay = Relay(config)
    yield make_core(config, wall, mono, relay), wall, mono
    relay.close()


def _advance(wall: Clock, mono: Clock, seconds: float) -> None:
    wall.t += seconds
    mono.t += seconds


def test_member_day(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    steps = [
        (code("m1", iat=int(wall.t)), "front", ENTRY, "check_in"),
        (code("m1", iat=int(wall.t)), "inside", EXIT, "unlock"),
        (code("m1", iat=int(wall.t)), "front", ENTRY, "unlock"),
        (code("m1", iat=int(wall.t), act="checkout_begin", ttl=60), "remote", REMOTE, "checkout_begin"),
        (code("m1", iat=int(wall.t)), "inside", EXIT, "unlock"),
        (code("m1", iat=int(wall.t), act="checkout", ttl=60), "remote", REMOTE, "checkout"),
    ]
    for text, reader, side, result in steps:
        _advance(wall, mono, 10)
        handled = core.present(text, reader, side)
        assert handled.decision is not None and handled.decision.result == result
    late = core.present(code("m1", iat=int(wall.t)), "inside", EXIT)
    assert late.decision is not None and late.decision.reason == "not_checked_in"
    assert core.seats().available == 2 and core.seats().symbol == "○"


def test_seats_and_symbols(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    symbols = []
    for m in ("a", "b", "c"):
        core.present(code(m, iat=int(wall.t)), "front", ENTRY)
        symbols.append(core.seats().symbol)
    assert symbols == ["△", "×", "×"]
    assert core.journal.events()[-1].reason == "full"


def test_same_presentation_and_replay(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    text = code("m1", iat=int(wall.t))
    first = core.present(text, "front", ENTRY).decision
    assert first is not None and first.ok
    _advance(wall, mono, 2)
    assert core.present(text, "front", ENTRY).ignored
    other_reader = core.present(text, "inside", EXIT).decision
    assert other_reader is not None and other_reader.reason == "replayed"
    _advance(wall, mono, 10)
    later = core.present(text, "front", ENTRY).decision
    assert later is not None and later.reason == "replayed"


def test_the_presentation_window_runs_on_the_monotonic_clock(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    text = code("m1", iat=int(wall.t))
    assert core.present(text, "front", ENTRY).decision is not None
    wall.t += 3600  # the wall clock jumps; 1 s passes
    mono.t += 1
    assert core.present(text, "front", ENTRY).ignored, "still the same presentation"


def test_a_denied_command_redelivered_at_once_gets_its_first_answer(
    door: tuple[DoorCore, Clock, Clock],
) -> None:
    core, wall, _ = door
    stale = code("m1", iat=int(wall.t) - 600, act="unlock", ttl=60)
    first = core.present(stale, "remote", REMOTE)
    assert first.decision is not None and first.decision.reason == Deny.EXPIRED and first.code is not None
    again = core.present(stale, "remote", REMOTE)  # QoS 1 redelivery, a moment later
    assert again.redelivery and again.decision == first.decision
    assert again.code is not None and again.code.cti == first.code.cti, "answered with its cti"


def test_a_denied_code_held_up_is_one_denial(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    expired = code("m1", iat=int(wall.t) - 1000, ttl=100)
    for _ in range(10):  # a camera sees it in every frame
        core.present(expired, "front", ENTRY)
        _advance(wall, mono, 0.1)
    assert [e.reason for e in core.journal.events()] == ["expired"]
    _advance(wall, mono, 6)
    core.present(expired, "front", ENTRY)
    assert len(core.journal.events()) == 2, "a new presentation after 5 s is a new denial"
    garbage = "OP1:!!!"
    core.present(garbage, "front", ENTRY)
    core.present(garbage, "front", ENTRY)
    assert [e.reason for e in core.journal.events()][-1:] == ["malformed"]
    assert core.journal.events()[-1].member is None


def test_commands_execute_once_and_redeliveries_get_the_first_answer(
    door: tuple[DoorCore, Clock, Clock],
) -> None:
    core, wall, mono = door
    core.present(code("m1", iat=int(wall.t)), "front", ENTRY)
    cmd = code("m1", iat=int(wall.t), act="checkout", ttl=60)
    first = core.present(cmd, "remote", REMOTE)
    assert first.decision is not None and first.decision.result == "checkout" and not first.redelivery
    seq = core.journal.last_seq()
    for delay in (1, 20):
        _advance(wall, mono, delay)
        again = core.present(cmd, "remote", REMOTE)
        assert again.redelivery and again.decision == first.decision
    assert core.journal.last_seq() == seq, "a redelivery journals nothing and executes nothing"
    # a denied command is spent too, and its redelivery gets the same denial
    denied_cmd = code("m2", iat=int(wall.t), act="unlock", ttl=60)
    d1 = core.present(denied_cmd, "remote", REMOTE)
    core.present(code("m2", iat=int(wall.t)), "front", ENTRY)  # m2 checks in meanwhile
    d2 = core.present(denied_cmd, "remote", REMOTE)
    assert d1.decision == d2.decision and d2.decision is not None and d2.decision.reason == "not_checked_in"


def test_command_ttl_is_shorter(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    handled = core.present(code("m1", iat=int(wall.t), act="check_in", ttl=120), "remote", REMOTE)
    assert handled.decision is not None and handled.decision.reason == "ttl_too_long"
    shown = core.present(code("m1", iat=int(wall.t), act="check_in", ttl=120), "front", ENTRY)
    assert shown.decision is not None and shown.decision.result == "check_in"


def test_revocation_while_inside(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    core.present(code("m1", iat=int(wall.t)), "front", ENTRY)
    core.set_revoked(5, frozenset({"m1"}))
    assert core.revocation_version == 5
    _advance(wall, mono, 10)
    handled = core.present(code("m1", iat=int(wall.t)), "inside", EXIT)
    assert handled.decision is not None and handled.decision.reason == "revoked"
    assert handled.events[0].member == "m1"
    core.handle(ExitButton(True))
    assert [e.source for e in core.journal.events()][-1] == "button", "the exit button still lets anyone out"
    core.set_revoked(6, frozenset())
    after = core.present(code("m1", iat=int(wall.t)), "inside", EXIT).decision
    assert after is not None and after.unlock


def test_ticks_journal_overstay_and_auto_checkout(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, mono = door
    core.present(code("m1", iat=int(wall.t)), "front", ENTRY)
    seq = core.journal.last_seq()
    core.tick()
    assert core.journal.last_seq() == seq, "a tick with nothing due journals nothing"
    _advance(wall, mono, 3600 + 600)
    core.tick()
    types = [e.type for e in core.journal.events()][-3:]
    assert types == ["overstay_warning", "overstay", "checkout"]
    assert core.journal.events()[-1].fields["auto"] is True and core.seats().occupied == 0


def test_clock_set_back_cannot_revive_old_codes(tmp_path: Path) -> None:
    """A door that saw time T keeps it across a restart, even if the wall clock says 1970."""
    config = make_config(tmp_path)
    wall, mono = Clock(NOW), Clock(0.0)
    relay = Relay(config)
    core = make_core(config, wall, mono, relay, synced=False)
    core.present(code("m1", iat=NOW), "front", ENTRY)
    core.journal.close()

    old_code = code("m2", iat=NOW - 3600)  # a screenshot from an hour before
    wall.t = 0.0  # reboot without a clock
    core = make_core(config, wall, mono, relay, synced=False)
    assert core.journal.time_floor() >= NOW
    decision = core.present(old_code, "front", ENTRY).decision
    assert decision is not None and decision.reason == "expired"
    relay.close()


def test_a_forward_jump_of_an_unsynchronized_clock_poisons_nothing(tmp_path: Path) -> None:
    """Run once with the clock 30 days ahead (no NTP), restart with the right clock: codes work."""
    config = make_config(tmp_path)
    relay = Relay(config)
    ahead = Clock(NOW + 30 * 86400)
    mono = Clock(0.0)
    core = make_core(config, ahead, mono, relay, synced=False)
    core.present(code("m1", iat=NOW), "front", ENTRY)  # expired, 30 days "late"
    core.journal.save_floor(core.clock.floor)
    core.journal.close()
    right = Clock(NOW + 60)
    core = make_core(config, right, mono, relay, synced=False)
    fresh = core.present(code("m2", iat=NOW + 60), "front", ENTRY).decision
    assert fresh is not None and fresh.ok, "the unsynchronized reading never became the floor"
    relay.close()


def test_a_synchronized_clock_brings_a_bad_floor_back(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    relay = Relay(config)
    journal = Journal(config.storage.path)
    journal.save_floor(NOW + 30 * 86400)  # written by an older version, or a clock NTP later fixed
    journal.close()
    core = make_core(config, Clock(NOW), Clock(0.0), relay, synced=True)
    fresh = core.present(code("m1", iat=NOW), "front", ENTRY).decision
    assert fresh is not None and fresh.ok
    core.journal.save_floor(core.clock.floor)
    assert core.journal.time_floor() < NOW + 3600, "the synchronized time replaced the bad floor"
    relay.close()


def test_commands_get_only_a_few_seconds_of_skew(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    core.present(code("m1", iat=int(wall.t)), "front", ENTRY)
    queued = code("m1", iat=int(wall.t) - 101, act="unlock", ttl=60)  # minted 101 s ago, ttl 60
    late = core.present(queued, "remote", REMOTE).decision
    assert late is not None and late.reason == Deny.EXPIRED
    at_the_edge = code("m1", iat=int(wall.t) - 64, act="unlock", ttl=60)  # 4 s past exp: within 5 s
    edge = core.present(at_the_edge, "remote", REMOTE).decision
    assert edge is not None and edge.ok
    shown = code("m1", iat=int(wall.t) - 100, ttl=60)  # a code at the camera keeps the minute of skew
    camera = core.present(shown, "inside", EXIT).decision
    assert camera is not None and camera.ok


def test_an_unsynchronized_door_refuses_commands(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    relay = Relay(config)
    core = make_core(config, Clock(NOW), Clock(0.0), relay, synced=False)
    core.present(code("m1", iat=NOW), "front", ENTRY)
    refused = core.present(code("m1", iat=NOW, act="unlock", ttl=60), "remote", REMOTE).decision
    assert refused is not None and refused.reason == Deny.CLOCK_UNSYNCED and not refused.unlock
    relay.close()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "state") as state:
        yield state


def test_a_full_disk_degrades_codes_and_the_exit_button_still_opens(full_disk: Path) -> None:
    config = make_config(full_disk, door=DOOR)
    wall, mono = Clock(NOW), Clock(100.0)
    relay = Relay(config)
    core = make_core(config, wall, mono, relay)
    core.present(code("m1", iat=NOW), "front", ENTRY)
    seq = core.journal.last_seq()
    filler = fill(full_disk)
    _advance(wall, mono, 10)
    refused = core.present(code("m1", iat=int(wall.t)), "inside", EXIT).decision
    assert refused is not None and refused.reason == Deny.JOURNAL_ERROR and not refused.unlock
    assert Alarm.JOURNAL_ERROR in core.state.alarms
    relay.guard.release()
    core.handle(ExitButton(True))
    assert relay.board.relay_energized, "the exit button opens whatever the disk does"
    assert core.unjournaled >= 2, "the denial and the button's unlock wait in memory"
    filler.unlink()
    _advance(wall, mono, 1)
    core.tick()  # the journal probe: writes succeed again
    assert core.state.journal_ok and core.unjournaled == 0
    types = [e.type for e in core.journal.events() if e.seq > seq]
    assert types[:2] == ["denied", "unlock"] and "journal_recovered" in types
    again = core.present(code("m1", iat=int(wall.t)), "inside", EXIT).decision
    assert again is not None and again.ok, "the door recovered by itself"
    relay.close()


def test_a_journal_deleted_under_the_door_is_written_back(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    core.present(code("m1", iat=int(wall.t)), "front", ENTRY)
    seq = core.journal.last_seq()
    for suffix in ("", "-wal", "-shm"):
        Path(str(core.journal.path) + suffix).unlink(missing_ok=True)
    core.tick()
    assert core.journal.path.exists(), "restored from the open database"
    reopened = Journal(core.journal.path)
    assert reopened.last_seq() == seq and "m1" in reopened.load_state().sessions
    reopened.close()


def test_a_journal_replaced_under_the_door_is_a_journal_error(door: tuple[DoorCore, Clock, Clock]) -> None:
    core, wall, _ = door
    path = core.journal.path
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    Journal(path).close()  # something else made a new, empty journal there
    core.tick()
    assert Alarm.JOURNAL_ERROR in core.state.alarms
    refused = core.present(code("m1", iat=int(wall.t)), "front", ENTRY).decision
    assert refused is not None and refused.reason == Deny.JOURNAL_ERROR
