"""The technician's window into the running daemon: a local Unix socket (owner and group only).

`doorctl status` connects, sends one line, and gets one JSON reply. The reply is built
on the reactor thread (which owns the state); a thread per client only waits for it, with
a short timeout, so one idle or slow client never holds up another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.reactor import Reactor

log = logging.getLogger("doorctl.status")

CLIENT_TIMEOUT_SECONDS = 1.0
MAX_CLIENTS = 8
LISTEN_BACKLOG = 64
BUSY = "busy"  # the answer past MAX_CLIENTS at once: ask again
BUSY_RETRIES, BUSY_PAUSE_SECONDS = 10, 0.2
# Every status answer has these, or it is an error.
STATUS_FIELDS = ("store", "door_name", "lock", "door", "alarms", "readers", "clock_synced", "seats",
                 "sessions", "backlog", "cloud", "platform", "recent_events")

# What a technician does about each alarm (doorctl status and doctor print it).
ALARM_ADVICE = {
    "journal_error": "the journal cannot be written (disk full, read-only or failing card): members' codes "
                     "are refused, exit button and fire still open. Free space (df -h /var/lib/doorctl) or "
                     "replace the card; the door recovers by itself once writes succeed",
    "unlock_fault": "the bolt did not retract when the relay was energized: check the lock and its wiring",
    "lock_fault": "the bolt stays retracted with the relay off: the door is not locked; check the lock",
    "door_forced": "the door opened without an unlock: check the door",
    "door_held": "the door is held open: close it",
    "reader_fault": "a reader stopped delivering: check its cable and `doorctl doctor`",
    "cloud_config": "the [mqtt] files (certificate, key, password) could not be loaded: the door runs "
                    "offline; fix them (doorctl check-config names the key) and restart",
    "fire": "the fire input is active: the door is held open",
}


def status_problem(status: dict[str, Any]) -> str | None:
    """Why a status answer cannot be shown, or None when it is complete."""
    if "error" in status:
        return str(status["error"])
    missing = [f for f in STATUS_FIELDS if f not in status]
    if missing:
        return f"the daemon's answer lacks {', '.join(missing)}"
    return None


def status_socket_path(storage_path: str) -> Path:
    return Path(storage_path).parent / "status.sock"


class StatusServer:
    def __init__(self, path: Path, reactor: Reactor, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self.reactor = reactor
        self.snapshot = snapshot
        self._sock: socket.socket | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # created 0660: owner and group only, never world
        try:
            sock.bind(str(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        sock.listen(LISTEN_BACKLOG)
        self._sock = sock
        threading.Thread(target=self._accept, name="status-socket", daemon=True).start()

    def close(self) -> None:
        if self._sock is None:
            return  # never bound: the path is not ours to remove
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        clients = threading.BoundedSemaphore(MAX_CLIENTS)
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            if not clients.acquire(blocking=False):
                # More clients at once than a technician ever runs: say so (never a reset), at once.
                with contextlib.suppress(OSError), conn:
                    conn.setblocking(False)
                    conn.send(json.dumps({"error": BUSY}).encode() + b"\n")
                continue
            threading.Thread(target=self._serve, args=(conn, clients), name="status-client",
                             daemon=True).start()

    def _serve(self, conn: socket.socket, clients: threading.BoundedSemaphore) -> None:
        try:
            with conn:
                conn.settimeout(CLIENT_TIMEOUT_SECONDS)
                conn.recv(1024)
                conn.sendall(json.dumps(self._ask(), ensure_ascii=False).encode() + b"\n")
        except OSError:
            pass  # the client went away or sent nothing in time
        finally:
            clients.release()

    def _ask(self) -> dict[str, Any]:
        done = threading.Event()
        box: dict[str, Any] = {}

        def build() -> None:
            try:
                box.update(self.snapshot())
            except Exception as exc:
                log.exception("status snapshot failed")
                box.clear()
                box["error"] = f"the daemon could not build its status: {exc}"
            finally:
                done.set()

        self.reactor.post(build)
        if not done.wait(3):
            return {"error": "the daemon's main loop did not answer within 3 s (hung?)"}
        return box


def query(path: Path, timeout: float = 5.0) -> dict[str, Any]:
    """The daemon's status; a busy answer (too many clients at once) is asked again a few times."""
    for _ in range(BUSY_RETRIES):
        try:
            reply = _query_once(path, timeout)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            # The listen backlog is full, or the server said busy and closed before our request went
            # out: a crowd of clients at this moment. Ask again.
            reply = {"error": BUSY}
        if reply.get("error") != BUSY:
            return reply
        time.sleep(BUSY_PAUSE_SECONDS)
    return {"error": f"the daemon is busy with other status clients ({MAX_CLIENTS} at once); try again"}


def _query_once(path: Path, timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(b"status\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
