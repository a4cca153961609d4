"""The camera worker: capture, change gating and decoding, in a process of its own.

Native code (V4L2 capture, zxing-cpp, zbar) runs here, never in the process that
drives the relay: if a hostile image crashes or hangs a decoder, the daemon's
CameraReader kills this process and starts another, and the door keeps working.

Protocol: one JSON object per line on stdout.
  {"code": TEXT, "t": FRAME_MONOTONIC, "waited_ms": MS, "decode_ms": MS, "step": NAME}
                                         a code seen (once per presentation), how long that
                                         frame waited for the decoder, how long it took to
                                         decode and which step read it
  {"health": true|false, "detail": STR}  the source opened / failed
  {"alive": T, "frames": N, "decoded": N, "reads": N, "ended": bool}
                                         a heartbeat, at least once a second, with the camera's
                                         counters since the worker started: frames taken, frames
                                         decoded (the gate let them through), codes read (every
                                         frame a code was found in, repeats of one presentation
                                         included), and whether a video file has played out
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # The worker's own process (python -m drivers.camera_worker) does no cryptography, yet numpy
    # seeds numpy.random through `secrets`, and hashlib's OpenSSL binding would map libcrypto for
    # it: 3.4 MB of the worker's resident memory, measured. Without `_hashlib`, hashlib uses
    # CPython's own implementations (its documented fallback). Only here, before numpy is
    # imported; a process that imports this module (a test) keeps its OpenSSL.
    sys.modules.setdefault("_hashlib", None)  # type: ignore[arg-type]  # None: "not importable"

import argparse
import importlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
from numpy.typing import NDArray

from drivers import picamera
from drivers.decode import DecodePipeline, to_grey
from drivers.presentation import PresentationWindow

# Change gating: a frame whose 80x60 thumbnail differs from the last one by more than this
# (mean absolute grey levels) means something moved; decode fully for a while after.
GATE_SIZE = (80, 60)
GATE_THRESHOLD = 1.5
AWAKE_SECONDS = 2.0
# Even with nothing moving, look properly now and then (a code held perfectly still).
IDLE_FULL_DECODE_SECONDS = 3.0
HEARTBEAT_SECONDS = 0.5
# A live camera that sends nothing for this long has stalled (a driver that blocks instead of
# failing): report it and exit, so the reader restarts us and the door hears of it.
FRAME_STALL_SECONDS = 4.0


def emit(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class LatestFrame:
    """A one-slot mailbox: the capture thread always replaces, the decoder always takes the newest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: tuple[float, NDArray[Any]] | None = None
        self.ended = False
        self.failed = False

    def put(self, t: float, frame: NDArray[Any]) -> None:
        with self._cond:
            self._frame = (t, frame)
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify()

    def take(self, timeout: float) -> tuple[float, NDArray[Any]] | None:
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame


# --- sources -------------------------------------------------------------------------------


def opencv_frames(source: str | int) -> Iterator[tuple[float, NDArray[Any]]]:
    """A device index or path, a stream URL, or a video file (played once at its own rate)."""
    is_file = isinstance(source, str) and "://" not in source and not source.startswith("/dev/")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise OSError(f"cannot open camera source {source!r}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    period = 1.0 / fps if is_file and fps > 0 else 0.0
    next_due = time.monotonic()
    try:
        while True:
            ok, frame = capture.read()
            t = time.monotonic()
            if not ok:
                if is_file:
                    return  # played once; the reader idles
                raise OSError(f"camera {source!r} stopped delivering frames")
            yield t, frame
            if period:
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    finally:
        capture.release()


FrameSource = Callable[[str], Iterator[tuple[float, NDArray[Any]]]]


def device_frames(source: str) -> Iterator[tuple[float, NDArray[Any]]]:
    """The door's own camera sources: Picamera2, or whatever OpenCV opens."""
    try:
        pi_camera = picamera.parse_source(source)
    except ValueError as exc:
        raise OSError(f"camera source {source!r}: {exc}") from exc
    if pi_camera is not None:
        return picamera.frames(pi_camera)
    return opencv_frames(int(source) if source.isdigit() else source)


# --- the loop ------------------------------------------------------------------------------


class Gate:
    """Decides which frames get the full decoder."""

    def __init__(self) -> None:
        self._previous: NDArray[Any] | None = None
        self.awake_until = 0.0
        self.last_full = 0.0

    def wants_decode(self, grey: NDArray[Any], now: float) -> bool:
        thumb = cv2.resize(grey, GATE_SIZE, interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, thumb
        if previous is None or float(cv2.absdiff(thumb, previous).mean()) > GATE_THRESHOLD:
            self.awake_until = now + AWAKE_SECONDS
        if now < self.awake_until or now - self.last_full >= IDLE_FULL_DECODE_SECONDS:
            self.last_full = now
            return True
        return False


def load_frame_source(spec: str) -> FrameSource:
    """`module:function`: the frame source chosen at startup (the platform passes it)."""
    module, _, name = spec.partition(":")
    source: FrameSource = getattr(importlib.import_module(module), name)
    return source


def capture_loop(frames: FrameSource, source: str, mailbox: LatestFrame) -> None:
    try:
        for t, frame in frames(source):
            mailbox.put(t, frame)
    except Exception as exc:  # any capture failure: report it, the parent restarts us
        emit(health=False, detail=str(exc))
        mailbox.failed = True
        mailbox.end()
        return
    mailbox.end()


def run(source: str, frames: FrameSource = device_frames) -> int:
    mailbox = LatestFrame()
    threading.Thread(target=capture_loop, args=(frames, source, mailbox), daemon=True).start()
    pipeline = DecodePipeline()
    gate = Gate()
    presentations = PresentationWindow()
    healthy = False
    last_beat = 0.0
    last_frame = time.monotonic()
    taken = decoded = reads = 0
    while True:
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_SECONDS:
            emit(alive=now, frames=taken, decoded=decoded, reads=reads, ended=mailbox.ended)
            last_beat = now
        item = mailbox.take(timeout=HEARTBEAT_SECONDS)
        if item is None:
            if mailbox.ended:
                if mailbox.failed:
                    return 1
                # A video file that has played out: stay alive and idle.
                time.sleep(HEARTBEAT_SECONDS)
            elif time.monotonic() - last_frame > FRAME_STALL_SECONDS:
                emit(health=False, detail=f"no frames for {FRAME_STALL_SECONDS:.0f} s")
                return 1
            continue
        last_frame = time.monotonic()
        taken += 1
        if not healthy:
            emit(health=True, detail="frames arriving")
            healthy = True
        t, frame = item
        grey = to_grey(frame)
        if not gate.wants_decode(grey, now):
            continue
        begun = time.monotonic()  # the frame waited from t until here (the decoder was busy)
        started = time.perf_counter()
        found = pipeline.decode_video(grey)
        decode_ms = (time.perf_counter() - started) * 1000
        decoded += 1
        reads += len(found)
        for text in found:
            if not presentations.seen_recently(text, now):
                emit(code=text, t=t, waited_ms=round((begun - t) * 1000, 3), decode_ms=round(decode_ms, 3),
                     step=pipeline.last_step)


def main() -> int:
    parser = argparse.ArgumentParser(description="doorctl camera worker (started by the daemon)")
    parser.add_argument("source")
    parser.add_argument("--frames", help="frame source as module:function (the platform's choice; "
                        "default: the device, through Picamera2 or OpenCV)")
    args = parser.parse_args()
    try:
        return run(args.source, load_frame_source(args.frames) if args.frames else device_frames)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
