"""CameraReader: runs the camera worker process and watches it.

The worker does capture, gating and decoding (drivers/camera_worker.py). This side
only reads its lines: codes go to the daemon, and a worker that dies, stops
sending heartbeats (a hung decoder) or loses its source is a `reader_fault`; it
is restarted with backoff while the other readers keep working.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from drivers.readers import Deliver, Health

log = logging.getLogger("doorctl.camera")

HEARTBEAT_TIMEOUT = 5.0
BACKOFF_START, BACKOFF_MAX = 0.5, 10.0



@dataclass(frozen=True, slots=True)
class CameraMetrics:
    """A camera worker's counters since it started, as of its last heartbeat."""

    frames: int = 0  # frames taken from the camera
    decoded: int = 0  # frames the change gate let through to the decoder
    reads: int = 0  # codes found, repeats of one presentation included
    ended: bool = False  # a video file has played out
    beat: float = 0.0  # monotonic time of that heartbeat

def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class CameraReader:
    def __init__(self, name: str, side: str, source: str | int, frames: str | None = None) -> None:
        self.name = name
        self.side = side
        self.source = str(source)
        self.frames = frames  # the worker's frame source (module:function); None: the device
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0
        # The current worker's counters (Frigate's per-camera metrics): from its last heartbeat.
        self.metrics = CameraMetrics()

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, deliver: Deliver, health: Health) -> None:
        self._thread = threading.Thread(
            target=self._supervise, args=(deliver, health), name=f"camera-{self.name}", daemon=True
        )
        self._thread.start()
        threading.Thread(target=self._watchdog, args=(health,), name=f"camera-wd-{self.name}",
                         daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(3)

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _watchdog(self, health: Health) -> None:
        while not self._stop.wait(1.0):
            proc = self._proc
            silent = time.monotonic() - self._last_beat
            if proc is not None and proc.poll() is None and silent > HEARTBEAT_TIMEOUT:
                log.error("camera %s: worker %d silent for %.0fs, killing it", self.name, proc.pid,
                          HEARTBEAT_TIMEOUT)
                proc.kill()

    def _supervise(self, deliver: Deliver, health: Health) -> None:
        backoff = BACKOFF_START
        while not self._stop.is_set():
            started = time.monotonic()
            self._last_beat = started
            try:
                argv = [sys.executable, "-m", "drivers.camera_worker", self.source]
                if self.frames is not None:
                    argv += ["--frames", self.frames]
                self._proc = subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env={**os.environ},
                )
            except OSError as exc:
                health(False, f"cannot start the camera worker: {exc}")
                self._stop.wait(backoff)
                continue
            self._read(self._proc, deliver, health)
            code = self._proc.wait()
            if self._stop.is_set():
                return
            health(False, f"camera worker exited ({code})")
            # A worker that ran a good while earns a quick restart; one that keeps failing, a slow one.
            backoff = BACKOFF_START if time.monotonic() - started > 30 else min(backoff * 2, BACKOFF_MAX)
            self._stop.wait(backoff)

    def _read(self, proc: subprocess.Popen[bytes], deliver: Deliver, health: Health) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self._last_beat = time.monotonic()
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if isinstance(message.get("code"), str):
                stamp = message.get("t")
                # A frame time that is not a number must not end this thread: the code still counts.
                valid = isinstance(stamp, int | float) and not isinstance(stamp, bool)
                frame_t = float(stamp) if valid and isinstance(stamp, int | float) else time.monotonic()
                deliver(message["code"], frame_t)
                # After delivering: the log line costs the door nothing on its way to the relay.
                log.info("camera %s: code in frame_t=%.6f, decoded in %s ms by %s (waited %s ms)", self.name,
                         frame_t, message.get("decode_ms"), message.get("step"), message.get("waited_ms"))
            elif "health" in message:
                health(bool(message["health"]), str(message.get("detail", "")))
            elif "alive" in message:
                # The worker's counters, replaced whole (one writer: this thread).
                frames, decoded, reads = (_count(message.get(k)) for k in ("frames", "decoded", "reads"))
                self.metrics = CameraMetrics(frames, decoded, reads, ended=message.get("ended") is True,
                                             beat=self._last_beat)
