"""The safety chain against a separate simulated board process (issue 3, item 5).

The board outlives the daemon, as a Pi's GPIO outputs outlive a crashed process:
only `doorctl relay-off` (systemd's ExecStopPost) or a watchdog layer brings the
relay down.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, config_doc, toml_text
from tests.procs import BoardProcess, DoorProcess, FakeSystemd, doorctl
from tests.rig import wait_for

MAX_UNLOCK = 4.0
BOUND = MAX_UNLOCK + 0.1
KILLS = 60


@pytest.fixture
def door_config(tmp_path: Path) -> Path:
    doc = config_doc(lock={"relay_pin": "GPIO17", "door_sensor_pin": "GPIO27", "exit_button_pin": "GPIO22",
                           "fire_alarm_pin": "GPIO23", "lock_sensor_pin": "GPIO24", "unlock_seconds": 3,
                           "max_unlock_seconds": MAX_UNLOCK, "door_held_seconds": 30})
    doc["storage"] = {"path": str(tmp_path / "doorctl.db")}
    path = tmp_path / "door.toml"
    path.write_text(toml_text(doc))
    return path


@pytest.fixture
def board(door_config: Path, tmp_path: Path) -> Iterator[BoardProcess]:
    b = BoardProcess(door_config, tmp_path / "sim.sock")
    yield b
    b.close()


def _relay_off(config: Path, board: BoardProcess) -> None:
    res = doorctl("relay-off", "--sim", "--config", str(config), "--sim-socket", str(board.socket_path))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_sigkill_while_unlocked_then_relay_off(door_config: Path, board: BoardProcess) -> None:
    """SIGKILLs at random moments of an unlock; systemd's relay-off brings the relay down each time.
    KILLS of them: each costs a daemon start and a relay-off process (about 1.4 s on a CI machine)."""
    rng = random.Random(7)
    longest = 0.0
    for _ in range(KILLS):
        t0 = time.monotonic()
        door = DoorProcess(door_config, board.socket_path)
        assert not board.relay(), "a starting daemon never pulses the relay"
        board.press()
        assert wait_for(board.relay, 2)
        time.sleep(rng.uniform(0, 0.5))
        door.kill(signal.SIGKILL)
        door.popen.wait(5)
        assert board.relay(), "the board keeps the relay as the dead process left it"
        _relay_off(door_config, board)
        assert not board.relay()
        spans = board.relay_spans(t0)
        assert len(spans) == 1, f"one press, one activation: {spans}"
        on, off = spans[0]
        assert off is not None
        longest = max(longest, off - on)
    print(f"\nlongest relay-on over {KILLS} SIGKILLs: {longest:.3f} s (bound {BOUND:.1f} s)")
    assert longest < BOUND


def test_sigterm_relay_off_first_then_clean_exit(door_config: Path, board: BoardProcess) -> None:
    door = DoorProcess(door_config, board.socket_path)
    board.press()
    assert wait_for(board.relay, 2)
    t_term = time.monotonic()
    door.kill(signal.SIGTERM)
    assert door.popen.wait(5) == 0
    ((_on, off),) = board.relay_spans(t_term - 5)
    assert off is not None and off - t_term < 0.5
    assert "stopped" in door.output()


def test_hung_process_is_killed_by_the_watchdog_and_relay_off_runs(
    door_config: Path, board: BoardProcess, tmp_path: Path
) -> None:
    door: DoorProcess | None = None

    def systemd_acts() -> None:  # WatchdogSignal=SIGKILL, then ExecStopPost
        assert door is not None
        door.kill(signal.SIGKILL)
        door.popen.wait(5)
        _relay_off(door_config, board)

    systemd = FakeSystemd(tmp_path, watchdog_seconds=1.0, on_timeout=systemd_acts)
    try:
        door = DoorProcess(door_config, board.socket_path, env=systemd.env)
        assert wait_for(lambda: any("READY=1" in m for _, m in systemd.messages), 5)
        time.sleep(1.5)
        assert systemd.fired_at is None, "a healthy loop keeps pinging"
        pings = [t for t, m in systemd.messages if "WATCHDOG=1" in m]
        assert len(pings) >= 2
        t0 = time.monotonic()
        board.press()
        assert wait_for(board.relay, 2)
        door.kill(signal.SIGSTOP)  # the whole process freezes: no thread of it runs
        assert wait_for(lambda: systemd.fired_at is not None, 5)
        assert wait_for(lambda: not board.relay(), 5)
        ((on, off),) = board.relay_spans(t0)
        assert off is not None and off - on < BOUND
    finally:
        systemd.close()
        if door is not None:
            door.kill(signal.SIGKILL)


def test_loop_stuck_on_the_disk_is_bounded_by_the_guard(
    door_config: Path, board: BoardProcess, tmp_path: Path
) -> None:
    """The journal's disk stalls (another process holds the database): the reactor blocks inside a
    commit, the pulse timer cannot run, and the in-process guard drops the relay at the bound."""
    door = DoorProcess(door_config, board.socket_path)
    try:
        t0 = time.monotonic()
        board.press()
        assert wait_for(board.relay, 2)
        blocker = sqlite3.connect(tmp_path / "doorctl.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        board.press()  # the loop now blocks writing this press to the journal
        assert wait_for(lambda: not board.relay(), MAX_UNLOCK + 1)
        ((on, off),) = board.relay_spans(t0)
        assert off is not None and MAX_UNLOCK - 0.1 <= off - on < BOUND
        time.sleep(0.5)
        blocker.execute("ROLLBACK")
        blocker.close()
        door.wait_line("event seq=", 15)
        assert wait_for(lambda: "relay_watchdog" in door.output(), 15), door.output()
    finally:
        assert door.stop() == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    text = (ROOT / "systemd" / "doorctl.service").read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=always", "ExecStopPost=", "relay-off",
                   "StateDirectory=doorctl", "ConfigurationDirectory=doorctl", "RestartPreventExitStatus=2",
                   "WorkingDirectory=/var/lib/doorctl", "ConfigurationDirectoryMode=0750"):
        assert needed in text
    # Groups a Debian without Raspberry Pi packages lacks must not be required (216/GROUP), and
    # the door must be able to read the kernel's NTP state (ProtectClock= denies adjtimex).
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not [line for line in settings if line.startswith(("SupplementaryGroups=", "ProtectClock="))]
    assert "SystemCallFilter=@system-service adjtimex clock_adjtime" in settings
    # The relay goes off from the base venv, which no update replaces (contract §11); the daemon runs
    # the venv `current` points at.
    assert "ExecStopPost=/opt/doorctl/.venv/bin/doorctl relay-off" in text
    assert "ExecStart=/opt/doorctl/current/bin/doorctl run" in text
    venv_doorctl = str(ROOT / ".venv" / "bin" / "doorctl")
    units = []
    for name in ("doorctl.service", "doorctl-update.service", "doorctl-update.path"):
        unit = tmp_path / name
        unit.write_text((ROOT / "systemd" / name).read_text()
                        .replace("/opt/doorctl/.venv/bin/doorctl", venv_doorctl)
                        .replace("/opt/doorctl/current/bin/doorctl", venv_doorctl))
        units.append(str(unit))
    res = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    problems = [line for line in (res.stdout + res.stderr).splitlines() if str(tmp_path) in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
