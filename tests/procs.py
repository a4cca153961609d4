"""Running doorctl as real processes: the daemon, the separate simulated board, relay-off.

Also a stand-in for systemd's side of the notify protocol (READY, WATCHDOG pings),
so the watchdog layer of the safety chain can be tested without PID 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hwsim.server import BoardClient
from tests.helpers import ROOT

DOORCTL = [sys.executable, "-m", "controller.cli"]


def doorctl(*args: str, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DOORCTL, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout, **kw)


class Proc:
    """A child process whose output lines are collected on a thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            [*DOORCTL, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})},
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, needle: str, timeout: float = 20) -> str:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                if self.popen.poll() is not None:
                    end = min(end, time.monotonic() + 0.5)  # exited: only buffered lines may come
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {needle!r}; output:\n" + "\n".join(self.lines))
                self._cond.wait(min(left, 0.1))

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self) -> int:
        self.kill(signal.SIGTERM)
        try:
            return self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)


class BoardProcess(Proc):
    """`doorctl sim`: the board in its own process, outliving the daemons that drive it."""

    def __init__(self, config: Path, socket_path: Path) -> None:
        super().__init__(["sim", "--config", str(config), "--sim-socket", str(socket_path)])
        self.socket_path = socket_path
        self.wait_line("simulated board ready")
        self.client = BoardClient(socket_path)

    def request(self, **message: Any) -> dict[str, Any]:
        return self.client.request(**message)

    def relay(self) -> bool:
        return bool(self.request(op="state")["relay"])

    def press(self, name: str = "exit_button") -> None:
        self.request(op="input", name=name, active=True)
        time.sleep(0.03)
        self.request(op="input", name=name, active=False)

    def relay_spans(self, since: float = 0.0) -> list[tuple[float, float | None]]:
        spans: list[tuple[float, float | None]] = []
        start = None
        for t, _gpio, role, level in self.request(op="timeline", since=since)["changes"]:
            if role != "relay":
                continue
            if level and start is None:
                start = t
            elif not level and start is not None:
                spans.append((start, t))
                start = None
        if start is not None:
            spans.append((start, None))
        return spans

    def close(self) -> None:
        self.client.close()
        self.stop()


class DoorProcess(Proc):
    def __init__(self, config: Path, socket_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(["run", "--sim", "--config", str(config), "--sim-socket", str(socket_path)], env)
        self.wait_line("ready:")


@contextmanager
def running_door(config: Path, socket_path: Path) -> Iterator[tuple[BoardProcess, DoorProcess]]:
    """A board process and `doorctl run --sim` on it, both stopped afterwards."""
    board = BoardProcess(config, socket_path)
    try:
        door = DoorProcess(config, board.socket_path)
        try:
            yield board, door
        finally:
            door.stop()
    finally:
        board.close()


def plain_mqtt(port: int) -> dict[str, Any]:
    """A door's [mqtt] for a plain loopback broker (door-only tests and benches)."""
    return {"host": "127.0.0.1", "port": port, "tls": False}


def door_trusting_service(tmp_path: Path, mqtt: dict[str, Any], kid: str, public_b64: str,
                          **sections: Any) -> tuple[BoardProcess, DoorProcess]:
    """A board and a `doorctl run --sim` that trust the pass service's key and take its commands
    (no NTP on test machines), connected to the broker with `mqtt` (its [mqtt] section: the closed
    broker's identity for the door, or a plain test broker). The caller stops both."""
    from tests.helpers import config_doc, toml_text

    lock = sections.pop("lock", {"relay_pin": "GPIO17", "exit_button_pin": "GPIO22"})
    doc = config_doc(lock=lock, mqtt=mqtt, **sections)
    doc["credentials"] = {"keys": {kid: public_b64}, "commands_need_synced_clock": False}
    doc["storage"] = {"path": str(tmp_path / "doorctl.db")}
    config = tmp_path / "door.toml"
    config.write_text(toml_text(doc))
    board = BoardProcess(config, tmp_path / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    door.wait_line("connected to broker")
    return board, door


class FakeSystemd:
    """systemd's end of sd_notify plus its watchdog: kills the service when the pings stop,
    then runs the unit's ExecStopPost (`doorctl relay-off`)."""

    def __init__(self, tmp: Path, watchdog_seconds: float, on_timeout: Callable[[], None]) -> None:
        self.path = tmp / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.05)
        self.watchdog_seconds = watchdog_seconds
        self.on_timeout = on_timeout
        self.messages: list[tuple[float, str]] = []
        self.fired_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path), "WATCHDOG_USEC": str(int(self.watchdog_seconds * 1e6))}

    def _run(self) -> None:
        last_ping: float | None = None
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096).decode()
                now = time.monotonic()
                self.messages.append((now, data))
                if "WATCHDOG=1" in data or "READY=1" in data:
                    last_ping = now
            except TimeoutError:
                pass
            if last_ping is not None and time.monotonic() - last_ping > self.watchdog_seconds:
                self.fired_at = time.monotonic()
                self.on_timeout()
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
