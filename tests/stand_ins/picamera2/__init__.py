"""A stand-in for Picamera2, the one part of the door these tests cannot have (no Pi camera, no
libcamera on CI). It keeps the real library's surface that drivers/picamera.py uses and its
frame layout (YUV420: height * 3/2 rows, the Y plane first; SensorTimestamp in ns on
CLOCK_MONOTONIC), and renders a phone with a code into the Y plane with hwsim's renderer.

Put this folder on PYTHONPATH. Environment:
  STAND_IN_PICAMERA_TEXT        a code to show in every frame (else an empty scene)
  STAND_IN_PICAMERA_FAIL_AFTER  raise RuntimeError (as libcamera does) after this many frames
  STAND_IN_PICAMERA_CAMERAS     how many cameras are attached (default 1)
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import numpy as np

from hwsim.render import background, phone_frame


def _cameras() -> int:
    return int(os.environ.get("STAND_IN_PICAMERA_CAMERAS", "1"))


class _Request:
    def __init__(self, yuv: np.ndarray, stamp_ns: int) -> None:
        self._yuv = yuv
        self._stamp_ns = stamp_ns
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main" and not self.released
        return self._yuv.copy()

    def get_metadata(self) -> dict[str, Any]:
        return {"SensorTimestamp": self._stamp_ns, "ExposureTime": 10000}

    def release(self) -> None:
        self.released = True


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= _cameras():
            raise IndexError("list index out of range")  # what the real one raises
        self._config: dict[str, Any] | None = None
        self._started = False
        self._frames = 0
        self._rng = random.Random(camera_num)
        self._text = os.environ.get("STAND_IN_PICAMERA_TEXT") or None
        self._fail_after = int(os.environ.get("STAND_IN_PICAMERA_FAIL_AFTER", "0")) or None
        self._picture: np.ndarray | None = None

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [{"Model": "stand-in", "Num": n} for n in range(_cameras())]

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        return {"main": dict(main), "controls": dict(controls)}

    def configure(self, config: dict[str, Any]) -> None:
        assert config["main"]["format"] == "YUV420"
        self._config = config

    def start(self) -> None:
        assert self._config is not None, "configure() before start()"
        self._started = True

    def capture_request(self) -> _Request:
        assert self._started and self._config is not None
        self._frames += 1
        if self._fail_after is not None and self._frames > self._fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        width, height = self._config["main"]["size"]
        time.sleep(1 / self._config["controls"]["FrameRate"])
        if self._picture is None:
            self._picture = (phone_frame(self._text, self._rng, (width, height), max_tilt_deg=10)
                             if self._text else background(width, height, self._rng))
        chroma = np.full((height // 2, width), 128, np.uint8)
        # Exposed a few milliseconds before it is handed over, as a real sensor's frame is.
        return _Request(np.vstack([self._picture, chroma]), time.monotonic_ns() - 4_000_000)

    def stop(self) -> None:
        self._started = False

    def close(self) -> None:
        self._config = None
