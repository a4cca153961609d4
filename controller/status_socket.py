"""The technician's window into the running daemon: a local Unix socket (owner and group only).

`doorctl status` connects, sends one line, and gets one JSON reply. The reply is built
on the reactor thread (which owns the state); the socket thread only waits for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.reactor import Reactor

log = logging.getLogger("doorctl.status")


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
        finally:
            os.umask(old)
        sock.listen(4)
        self._sock = sock
        threading.Thread(target=self._accept, name="status-socket", daemon=True).start()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(1024)
                    conn.sendall(json.dumps(self._ask()).encode() + b"\n")
                except OSError:
                    continue

    def _ask(self) -> dict[str, Any]:
        done = threading.Event()
        box: dict[str, Any] = {}

        def build() -> None:
            try:
                box.update(self.snapshot())
            finally:
                done.set()

        self.reactor.post(build)
        if not done.wait(3):
            return {"error": "the daemon's main loop did not answer within 3 s (hung?)"}
        return box


def query(path: Path, timeout: float = 5.0) -> dict[str, Any]:
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
