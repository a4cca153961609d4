"""The simulated board on a Unix socket (contract §7), and the links a pin factory drives it through.

One JSON object per line in, one JSON reply per line out. Besides the contract's
operations (state, door, input, show, jam) the socket carries the pin traffic of
the controller (`pin_read`, `pin_write`, `watch`) and a `timeline` query for tests
and benchmarks. A `watch` connection turns into a stream of input-pin changes.
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
from typing import Any, Protocol

from hwsim.board import PinListener, SimBoard

log = logging.getLogger("hwsim")

MAX_LINE = 64 * 1024


class BoardLink(Protocol):
    """What a pin factory needs from a board, wherever the board runs."""

    def read(self, gpio: int) -> bool: ...
    def write(self, gpio: int, level: bool) -> None: ...
    def subscribe(self, listener: PinListener) -> None: ...
    def close(self) -> None: ...


class LocalLink:
    """A board in this process."""

    def __init__(self, board: SimBoard) -> None:
        self.board = board

    def read(self, gpio: int) -> bool:
        return self.board.read(gpio)

    def write(self, gpio: int, level: bool) -> None:
        self.board.write(gpio, level)

    def subscribe(self, listener: PinListener) -> None:
        self.board.subscribe(listener)

    def close(self) -> None:
        pass


class BoardUnavailable(ConnectionError):
    pass


class BoardClient:
    """Request/reply over the board socket. Thread-safe: one request at a time."""

    def __init__(self, path: str | Path, timeout: float = 2.0) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            self._sock.connect(self.path)
        except OSError as exc:
            raise BoardUnavailable(f"no simulated board answers on {self.path}: {exc}") from None
        self._file = self._sock.makefile("rwb")

    def request(self, **message: Any) -> dict[str, Any]:
        with self._lock:
            try:
                self._file.write(json.dumps(message).encode() + b"\n")
                self._file.flush()
                line = self._file.readline()
            except OSError as exc:
                raise BoardUnavailable(f"board on {self.path} went away: {exc}") from None
        if not line:
            raise BoardUnavailable(f"board on {self.path} closed the connection")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class RemoteLink:
    """A board in another process (`doorctl sim`), reached over its socket."""

    def __init__(self, path: str | Path) -> None:
        self.client = BoardClient(path)
        self._watch: socket.socket | None = None
        self._listeners: list[PinListener] = []

    def read(self, gpio: int) -> bool:
        return bool(self.client.request(op="pin_read", gpio=gpio)["level"])

    def write(self, gpio: int, level: bool) -> None:
        reply = self.client.request(op="pin_write", gpio=gpio, level=level)
        if not reply.get("ok"):
            raise BoardUnavailable(f"board refused the write: {reply.get('error')}")

    def subscribe(self, listener: PinListener) -> None:
        self._listeners.append(listener)
        if self._watch is None:
            self._watch = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._watch.connect(self.client.path)
            self._watch.sendall(b'{"op": "watch"}\n')
            stream = self._watch.makefile("rb")
            stream.readline()  # the {"ok": true}: the board watches for us from here on
            threading.Thread(target=self._pump, args=(stream,), name="hwsim-watch", daemon=True).start()

    def _pump(self, stream: Any) -> None:
        with stream:
            for line in stream:
                try:
                    change = json.loads(line)
                    gpio, level = int(change["gpio"]), bool(change["level"])
                except (ValueError, KeyError, TypeError):
                    continue
                for listener in list(self._listeners):
                    listener(gpio, level)
        log.warning("board watch stream on %s ended", self.client.path)

    def close(self) -> None:
        self.client.close()
        if self._watch is not None:
            with contextlib.suppress(OSError):
                self._watch.close()


# --- the server ----------------------------------------------------------------------------

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class BoardServer:
    """Serves a SimBoard on a Unix socket, one thread per connection."""

    def __init__(self, board: SimBoard, path: str | Path) -> None:
        self.board = board
        self.path = Path(path)
        self.extra_ops: dict[str, Handler] = {}  # e.g. `show`, added by the reader simulators
        self.readers: Any = None  # the SimReaders behind those ops, closed with the server
        # Ops that take the connection over (a frame stream): handler(message, connection).
        self.stream_ops: dict[str, Callable[[dict[str, Any], socket.socket], None]] = {}
        self._sock: socket.socket | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket file from a board that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        sock.listen(16)
        self._sock = sock
        threading.Thread(target=self._accept, name="hwsim-accept", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self.readers is not None:
            self.readers.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="hwsim-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for raw in stream:
                if len(raw) > MAX_LINE:
                    reply: dict[str, Any] = {"ok": False, "error": "line too long"}
                else:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        message = None
                    if not isinstance(message, dict):
                        reply = {"ok": False, "error": "expected one JSON object per line"}
                    elif message.get("op") == "watch":
                        self._stream_changes(conn, stream)
                        return
                    elif message.get("op") in self.stream_ops:
                        self.stream_ops[message["op"]](message, conn)
                        return
                    else:
                        reply = self.handle(message)
                try:
                    stream.write(json.dumps(reply).encode() + b"\n")
                    stream.flush()
                except OSError:
                    return

    def _stream_changes(self, conn: socket.socket, stream: Any) -> None:
        gone = threading.Event()

        def push(gpio: int, level: bool) -> None:
            try:
                conn.sendall(json.dumps({"gpio": gpio, "level": level}).encode() + b"\n")
            except OSError:
                gone.set()

        # Subscribed before the stream says it is open: a change right after the watcher hears "ok" is
        # never lost.
        self.board.subscribe(push)
        stream.write(b'{"ok": true}\n')
        stream.flush()
        try:
            # The watcher never sends again; a read returning means it hung up.
            while not gone.is_set() and stream.readline():
                pass
        except OSError:
            pass
        finally:
            self.board.unsubscribe(push)

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        try:
            if op == "state":
                return {"ok": True, **self.board.state()}
            if op == "door":
                self.board.set_door(_flag(message, "open"))
                return {"ok": True}
            if op == "input":
                self.board.set_input(str(message.get("name")), _flag(message, "active"))
                return {"ok": True}
            if op == "jam":
                self.board.set_jammed(_flag(message, "jammed"))
                return {"ok": True}
            if op == "pin_read":
                return {"ok": True, "level": self.board.read(int(message["gpio"]))}
            if op == "pin_write":
                self.board.write(int(message["gpio"]), _flag(message, "level"))
                return {"ok": True}
            if op == "timeline":
                since = float(message.get("since", 0.0))
                changes = [c for c in self.board.timeline if c.t >= since]
                return {"ok": True, "changes": [[c.t, c.gpio, c.role, c.level] for c in changes]}
            if isinstance(op, str) and op in self.extra_ops:
                return self.extra_ops[op](message)
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad {op} request: {exc}"}
        return {"ok": False, "error": f"unknown op {op!r}"}


def _flag(message: dict[str, Any], key: str) -> bool:
    value = message.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} must be true or false")
    return value


def board_answers(path: str | Path) -> bool:
    try:
        client = BoardClient(path, timeout=1.0)
    except BoardUnavailable:
        return False
    try:
        return bool(client.request(op="state").get("ok"))
    except (BoardUnavailable, ValueError):
        return False
    finally:
        client.close()
