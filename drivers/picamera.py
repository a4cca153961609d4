"""Frames from a Pi CSI camera through Picamera2 (libcamera): reader source `picamera2[:N][@WxH]`.

Optional. The camera worker imports Picamera2 only when a reader's source names it, so a
door without it never loads it. On a Pi: `sudo apt install python3-picamera2` and a venv
made with `--system-site-packages` (scripts/install-pi.sh does both); pip's picamera2 does not
match the system's libcamera. A CSI camera also works through OpenCV's V4L2 path
(libcamera's V4L2 compatibility); Picamera2 adds the sensor's own frame timestamps, the
grey picture without a colour conversion (the Y plane of YUV420) and a fixed frame rate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy only for the annotations: config checks import this module
    from numpy.typing import NDArray

SCHEME = "picamera2"
DEFAULT_SIZE = (640, 480)
FRAME_RATE = 15.0
_SOURCE_RE = re.compile(r"picamera2(?::(?P<camera>\d{1,2}))?(?:@(?P<w>\d{2,4})x(?P<h>\d{2,4}))?")
INSTALL_HINT = ("sudo apt install python3-picamera2, in a venv made with --system-site-packages "
                "(scripts/install-pi.sh does both)")


@dataclass(frozen=True)
class PicameraSource:
    camera: int = 0
    size: tuple[int, int] = DEFAULT_SIZE


def parse_source(source: str) -> PicameraSource | None:
    """The camera a `picamera2...` source names; None for any other source.

    Raises ValueError for a `picamera2` source that is malformed, so a typo is a config
    error naming the key instead of a camera that never opens.
    """
    if not source.startswith(SCHEME):
        return None
    match = _SOURCE_RE.fullmatch(source)
    if match is None:
        raise ValueError("a Pi camera is 'picamera2', 'picamera2:N' or 'picamera2:N@WIDTHxHEIGHT'")
    size = DEFAULT_SIZE
    if match["w"]:
        size = (int(match["w"]), int(match["h"]))
        # YUV420 rows are aligned to 64 pixels by the ISP; other widths get padded strides.
        if size[0] % 64 or size[1] % 2 or not (64 <= size[0] <= 4096 and 48 <= size[1] <= 3072):
            raise ValueError("the width must be a multiple of 64 (64-4096), the height even (48-3072)")
    return PicameraSource(int(match["camera"] or 0), size)


def frame_time(metadata: dict[str, Any], now: float) -> float:
    """When the frame was exposed, on time.monotonic()'s clock.

    libcamera stamps frames (SensorTimestamp, ns) on CLOCK_MONOTONIC, the clock of
    time.monotonic(); a stamp that is missing or not within a second before `now` is not
    trusted and the arrival time stands in for it.
    """
    stamp = metadata.get("SensorTimestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        t = stamp / 1e9
        if now - 1.0 <= t <= now:
            return t
    return now


def grey_plane(yuv: NDArray[Any], size: tuple[int, int]) -> NDArray[Any]:
    """The Y plane of a YUV420 array as Picamera2 returns it (height * 3/2 rows): the grey picture."""
    import numpy as np  # here, not at the top: the config check imports this module too

    width, height = size
    if yuv.ndim != 2 or yuv.shape[0] < height or yuv.shape[1] < width:
        raise OSError(f"Pi camera returned a {yuv.shape} array for a {width}x{height} YUV420 frame")
    return np.ascontiguousarray(yuv[:height, :width])


def frames(source: PicameraSource) -> Iterator[tuple[float, NDArray[Any]]]:
    """Grey frames with their exposure times, until the camera fails (OSError)."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise OSError(f"Pi camera: picamera2 is not installed ({INSTALL_HINT})") from exc
    try:
        camera = Picamera2(source.camera)
    except Exception as exc:  # IndexError / RuntimeError from libcamera: no such camera, or busy
        raise OSError(f"Pi camera {source.camera} cannot be opened: {exc}") from exc
    try:
        config = camera.create_video_configuration(
            main={"size": source.size, "format": "YUV420"},
            controls={"FrameRate": FRAME_RATE},
        )
        camera.configure(config)
        camera.start()
        while True:
            request = camera.capture_request()
            try:
                yuv = request.make_array("main")
                metadata = request.get_metadata()
            finally:
                request.release()  # back to the camera at once: it has few buffers
            yield frame_time(metadata, time.monotonic()), grey_plane(yuv, source.size)
    except OSError:
        raise
    except Exception as exc:  # libcamera errors come as RuntimeError and friends
        raise OSError(f"Pi camera {source.camera} failed: {exc}") from exc
    finally:
        try:
            camera.stop()
            camera.close()
        except Exception:
            pass  # already failing; the worker exits and the reader restarts it
