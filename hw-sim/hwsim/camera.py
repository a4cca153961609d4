"""A simulated camera: the board renders what the door camera would see.

Idle: the same scene every frame with a little sensor noise. When a code is shown,
for a moment a phone with that code is held up, moving a little (a new pose every
few frames), rendered by hwsim.render. Frames are served over the board socket as
raw grey bytes, each with its capture time (time.monotonic()).

The camera worker's side, the frames' reader, is `hwsim.camera_feed` (kept apart so the worker
does not load this renderer).
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from typing import Any

import numpy as np

from hwsim.render import background, phone_frame

FPS = 15.0
SIZE = (640, 480)
PRESENTATION_SECONDS = 1.6
FRAMES_PER_POSE = 4


class SimCamera:
    def __init__(self, name: str, size: tuple[int, int] = SIZE, fps: float = FPS, seed: int = 1) -> None:
        self.name = name
        self.size = size
        self.fps = fps
        self.plugged = True
        self.frozen = False  # plugged in but sending nothing (a stalled driver)
        self._rng = random.Random(seed)
        self._scene = background(size[0], size[1], self._rng)
        noise_rng = np.random.default_rng(seed)
        self._noise = [noise_rng.normal(0, 1.2, (size[1], size[0])).astype(np.float32) for _ in range(8)]
        self._lock = threading.Lock()
        self._showing: str | None = None
        self._until = 0.0
        self._pose: np.ndarray | None = None
        self._pose_frames = 0
        self.first_code_frame_t: float | None = None  # when the latest shown code first reached a frame

    def show(self, text: str) -> None:
        with self._lock:
            self._showing = text
            self._until = time.monotonic() + PRESENTATION_SECONDS
            self._pose = None
            self.first_code_frame_t = None

    def frame(self, index: int) -> tuple[float, np.ndarray]:
        """The frame to send now and its capture time."""
        with self._lock:
            now = time.monotonic()
            if self._showing is not None and now < self._until:
                if self._pose is None or self._pose_frames >= FRAMES_PER_POSE:
                    self._pose = phone_frame(self._showing, self._rng, self.size, max_tilt_deg=15,
                                             max_rotation_deg=20)
                    self._pose_frames = 0
                self._pose_frames += 1
                # The capture time is when the frame is complete (after the render, which stands
                # for the light reaching the sensor, not for anything the door does).
                captured = time.monotonic()
                if self.first_code_frame_t is None:
                    self.first_code_frame_t = captured
                return captured, self._pose
            self._showing = None
            noisy = self._scene + self._noise[index % len(self._noise)]
            return now, np.clip(noisy, 0, 255).astype(np.uint8)

    def stream(self, message: dict[str, Any], conn: socket.socket) -> None:
        """Serve frames on this connection until it closes or the camera is unplugged."""
        if not self.plugged:
            conn.sendall(json.dumps({"ok": False, "error": "camera unplugged"}).encode() + b"\n")
            return
        conn.sendall(b'{"ok": true}\n')
        period = 1.0 / self.fps
        next_due = time.monotonic()
        index = 0
        while self.plugged:
            if self.frozen:
                time.sleep(period)  # a stalled driver: the device stays open, no frame comes
                next_due = time.monotonic()
                continue
            t, img = self.frame(index)
            header = {"t": t, "w": img.shape[1], "h": img.shape[0], "n": img.size}
            try:
                conn.sendall(json.dumps(header).encode() + b"\n" + img.tobytes())
            except OSError:
                return
            index += 1
            next_due += period
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_due = time.monotonic()
