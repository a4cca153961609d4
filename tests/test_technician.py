"""The technician's kit: `doorctl status` over the daemon's socket, `doorctl doctor`."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

from hwsim.broker import Broker
from tests.helpers import STAND_INS, code, config_doc, toml_text
from tests.procs import BoardProcess, doorctl, running_door
from tests.rig import wait_for
from tests.small_fs import remount, small_tmpfs


def show_until(board: BoardProcess, text: str, done: Callable[[], bool], timeout: float = 15) -> bool:
    """Show a code at the serial scanner until `done`: the scanner's port may open only after the
    daemon said ready, and bytes sent before it are lost, as with a real scanner. Within 5 s the
    same code again is the same presentation, so repeats decide nothing twice."""
    def attempt() -> bool:
        board.request(op="show", reader="inside", text=text)
        return done()

    return wait_for(attempt, timeout, step=0.5)


def _config(tmp: Path, **extra: object) -> Path:
    doc = config_doc(reader=[{"name": "inside", "type": "serial", "side": "exit", "port": "/dev/ttyACM0"}],
                     **extra)
    doc["lock"] = {"relay_pin": "GPIO17", "door_sensor_pin": "GPIO27", "exit_button_pin": "GPIO22"}
    doc["storage"] = {"path": str(tmp / "doorctl.db")}
    path = tmp / "door.toml"
    path.write_text(toml_text(doc))
    return path


def test_status_reports_the_running_door(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with running_door(config, tmp_path / "sim.sock") as (board, _door):
        sock = tmp_path / "status.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660, "owner and group only"
        # One after the other: the exit button is served ahead of a reader, so pressing it at once
        # could overtake the code.
        assert show_until(board, code("m-1", iat=int(time.time())),
                          lambda: "denied" in doorctl("status", "--config", str(config)).stdout)
        board.press()
        assert wait_for(lambda: "unlock" in doorctl("status", "--config", str(config)).stdout, 10)
        res = doorctl("status", "--config", str(config), "--json")
        status = json.loads(res.stdout)
        assert status["lock"] in ("locked", "unlocked") and status["door"] == "closed"
        assert status["readers"] == {"inside": "ok"} and status["cloud"] is None
        assert status["seats"]["capacity"] == 2 and status["backlog"] >= 2
        assert [e["type"] for e in status["recent_events"]][:2] == ["denied", "unlock"]
        text = doorctl("status", "--config", str(config)).stdout
        for needle in ("door      shinjuku-3/main", "seats     ○", "not configured", "recent events"):
            assert needle in text
    res = doorctl("status", "--config", str(config))
    assert res.returncode == 1 and "does not answer" in res.stderr


def test_doctor(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    try:
        config = _config(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port, "tls": False})
        res = doorctl("doctor", "--config", str(config))
        lines = res.stdout.splitlines()
        assert any(line.startswith("ok    config") for line in lines)
        assert any(line.startswith("ok    broker 127.0.0.1") for line in lines)
        assert any("serial port /dev/ttyACM0 missing" in line and line.startswith("fail") for line in lines)
        assert any(line.startswith("ok") and "MB free" in line for line in lines)
        assert res.returncode == 1, "a missing reader is a failure"
        assert "fix: plug the scanner in" in res.stdout
    finally:
        broker.stop()
    res = doorctl("doctor", "--config", str(config))
    assert any(line.startswith("fail  broker") for line in res.stdout.splitlines())
    bad = tmp_path / "bad.toml"
    bad.write_text("[door]\n")
    res = doorctl("doctor", "--config", str(bad))
    assert res.returncode == 1 and "door.store: required key is missing" in res.stdout


def test_doctor_checks_a_pi_camera(tmp_path: Path) -> None:
    doc = config_doc(reader=[{"name": "csi", "type": "camera", "side": "entry", "source": "picamera2:0"}])
    doc["storage"] = {"path": str(tmp_path / "doorctl.db")}
    config = tmp_path / "door.toml"
    config.write_text(toml_text(doc))
    without = {**os.environ, "PYTHONPATH": str(STAND_INS / "without_picamera2")}
    lines = doorctl("doctor", "--config", str(config), env=without).stdout.splitlines()
    assert any(line.startswith("fail  reader csi: picamera2 is not installed") for line in lines)
    stand_in = {**os.environ, "PYTHONPATH": str(STAND_INS)}
    lines = doorctl("doctor", "--config", str(config), env=stand_in).stdout.splitlines()
    assert any(line.startswith("ok    reader csi: Pi camera 0 (stand-in) at 640x480") for line in lines)
    lines = doorctl("doctor", "--config", str(config),
                    env={**stand_in, "STAND_IN_PICAMERA_CAMERAS": "0"}).stdout.splitlines()
    assert any(line.startswith("fail  reader csi: no Pi camera 0 (0 found)") for line in lines)


def test_a_corrupted_journal_degrades_and_status_still_answers(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with running_door(config, tmp_path / "sim.sock") as (board, door):
        # Corrupt the events table under the running daemon, which reported ready.
        db = sqlite3.connect(tmp_path / "doorctl.db")
        db.execute("DROP TABLE events")
        db.commit()
        db.close()
        res = doorctl("status", "--config", str(config), "--json")
        status = json.loads(res.stdout)
        assert res.returncode == 0, res.stderr
        assert {"seats", "lock", "alarms", "sessions", "backlog", "recent_events"} <= set(status)
        assert status["journal_unreadable"]
        text = doorctl("status", "--config", str(config))
        assert text.returncode == 0 and "Traceback" not in text.stderr
        # A member's exit code is refused journal_error (the degraded state) ...
        assert show_until(board, code("m-1", iat=int(time.time())),
                          lambda: "reason=journal_error" in door.output())
        assert wait_for(lambda: "journal_error" in doorctl("status", "--config", str(config)).stdout, 5)
        # ... and the exit button opens all the same.
        board.press()
        assert wait_for(board.relay, 5)


def test_a_journal_damaged_while_stopped_is_flagged_by_doctor_and_degrades_the_start(tmp_path: Path) -> None:
    config = _config(tmp_path)
    from controller.journal import Journal

    Journal(tmp_path / "doorctl.db").close()
    ok = [line for line in doctor_lines(config) if "journal" in line and "doorctl.db" in line]
    assert ok and ok[0].startswith("ok    journal"), ok
    db = sqlite3.connect(tmp_path / "doorctl.db")  # a malformed events table, the daemon stopped
    db.executescript("DROP TABLE events; CREATE TABLE events (seq INTEGER PRIMARY KEY, junk TEXT);")
    db.close()
    flagged = [line for line in doctor_lines(config) if line.startswith("fail  journal")]
    assert flagged and "table events is not the journal's" in flagged[0], flagged
    with running_door(config, tmp_path / "sim.sock") as (board, _door):
        # Degraded from the first moment, before anything is written: the alarm stands at start.
        status = json.loads(doorctl("status", "--config", str(config), "--json").stdout)
        assert "journal_error" in status["alarms"], status
        board.press()  # the exit button opens all the same
        assert wait_for(board.relay, 5)


def doctor_lines(config: Path) -> list[str]:
    return doorctl("doctor", "--config", str(config)).stdout.splitlines()


def test_an_idle_client_does_not_block_status(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with running_door(config, tmp_path / "sim.sock"), socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(tmp_path / "status.sock"))  # connects and says nothing
        started = time.monotonic()
        res = doorctl("status", "--config", str(config), "--json")
        assert res.returncode == 0 and json.loads(res.stdout)["store"] == "shinjuku-3"
        # The old server answered one client at a time, each with a 5 s timeout.
        assert time.monotonic() - started < 3.0, "not held up by the idle client"


def test_a_crowd_of_idle_clients_gets_busy_and_status_still_answers(tmp_path: Path) -> None:
    import resource

    config = _config(tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    crowd_size = min(1000, hard - 100)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, crowd_size + 100), hard))
    crowd: list[socket.socket] = []
    try:
        with running_door(config, tmp_path / "sim.sock"):
            for _ in range(crowd_size):  # they connect and say nothing
                client = socket.socket(socket.AF_UNIX)
                client.settimeout(5)
                while True:
                    try:
                        client.connect(str(tmp_path / "status.sock"))
                        break
                    except BlockingIOError:  # the listen backlog is full for a moment
                        time.sleep(0.001)
                crowd.append(client)
            # Past the few served at once, each is told "busy" (never a reset), and the technician's
            # own `doorctl status` still gets its answer.
            told = [c.recv(100) for c in crowd[-20:]]
            assert all(t.startswith(b'{"error": "busy"}') for t in told), told[:3]
            res = doorctl("status", "--config", str(config), "--json")
            assert res.returncode == 0 and json.loads(res.stdout)["store"] == "shinjuku-3", res.stderr
    finally:
        for client in crowd:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_second_daemon_on_the_same_state_refuses_to_start(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with running_door(config, tmp_path / "sim.sock") as (board, door):
        second = doorctl("run", "--sim", "--config", str(config), "--sim-socket", str(board.socket_path))
        assert second.returncode == 2
        assert f"another doorctl (pid {door.popen.pid}) already runs" in second.stderr
        assert (tmp_path / "status.sock").exists(), "the first daemon's socket is untouched"
        res = doorctl("status", "--config", str(config), "--json")
        assert res.returncode == 0


def test_a_bad_certificate_leaves_the_door_running_offline(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    config = _config(tmp_path, mqtt={"host": "127.0.0.1", "port": 1, "tls": True, "ca_file": str(not_pem)})
    with running_door(config, tmp_path / "sim.sock") as (board, _door):
        assert wait_for(lambda: "cloud_config" in doorctl("status", "--config", str(config)).stdout, 10)
        status = json.loads(doorctl("status", "--config", str(config), "--json").stdout)
        assert "mqtt.ca_file" in status["cloud"]
        board.press()
        assert wait_for(lambda: board.relay(), 5), "the door works offline"


def test_a_door_on_a_read_only_disk_starts_degraded_and_recovers(tmp_path: Path) -> None:
    """The state directory read-only from boot (a failing SD card remounted ro): the door runs, the
    exit button opens, codes are refused journal_error; once writable the door recovers by itself."""
    with small_tmpfs(tmp_path / "state") as state:
        lock = {"relay_pin": "GPIO17", "door_sensor_pin": "GPIO27", "exit_button_pin": "GPIO22"}
        doc = config_doc(lock=lock, reader=[{"name": "inside", "type": "serial", "side": "exit",
                                  "port": "/dev/ttyACM0"}])
        doc["storage"] = {"path": str(state / "doorctl.db")}
        config = tmp_path / "door.toml"
        config.write_text(toml_text(doc))
        remount(state, "ro")
        with running_door(config, tmp_path / "sim.sock") as (board, door):
            door.wait_line("the journal cannot be opened")
            board.press()
            assert wait_for(board.relay, 5), "the exit button opens on a read-only disk"
            assert show_until(board, code("m-1", iat=int(time.time())),
                              lambda: "reason=journal_error" in door.output())
            remount(state, "rw")
            door.wait_line("journal " + str(state / "doorctl.db") + " opened at last", 10)
            assert wait_for(lambda: (state / "status.sock").exists(), 15), "the status socket comes up"
            status = json.loads(doorctl("status", "--config", str(config), "--json").stdout)
            assert "journal_error" not in status["alarms"]
            types = [e["type"] for e in status["recent_events"]]
            assert types[:3] == ["unlock", "denied", "journal_recovered"], types


def test_doctor_names_the_real_cause_of_a_clock_behind_the_floor(tmp_path: Path) -> None:
    from controller.config import load_config
    from controller.doctor import check_clock
    from controller.journal import Journal

    config_path = _config(tmp_path)
    journal = Journal(tmp_path / "doorctl.db")
    journal.save_floor(time.time() + 30 * 86400)  # a run with the clock 30 days ahead (older doorctl)
    journal.close()
    findings = check_clock(load_config(config_path), rtc=tmp_path / "no-rtc")
    text = "\n".join(f"{f.level} {f.what} | {f.fix}" for f in findings)
    if "clock synchronized" in text:  # a machine with NTP: the floor is reported, and harmless
        assert "ahead of the synchronized clock" in text
    else:
        assert "fail the clock is 2,592,0" in text and "behind the journal's time floor" in text
        assert "timedatectl set-ntp true" in text
    assert "warn no real-time clock" in text and "RTC" in text
