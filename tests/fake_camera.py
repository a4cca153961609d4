"""Videos for Chromium's fake capture device (`--use-file-for-fake-video-capture`): Y4M files, the
format it plays (and loops) without a codec. A picture of a QR code stands in front of the phone."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import segno

WIDTH, HEIGHT = 640, 480


def qr_frame(text: str, *, size: int = 360) -> np.ndarray:
    """A grey scene with the QR of `text` in the middle, as a phone held at the door would see it."""
    qr = segno.make_qr(text, error="m")
    modules = np.array([[0 if dark else 255 for dark in row] for row in qr.matrix], dtype=np.uint8)
    quiet = np.pad(modules, 4, constant_values=255)
    code = cv2.resize(quiet, (size, size), interpolation=cv2.INTER_NEAREST)
    frame = np.full((HEIGHT, WIDTH), 170, dtype=np.uint8)
    top, left = (HEIGHT - size) // 2, (WIDTH - size) // 2
    frame[top:top + size, left:left + size] = code
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Frames (BGR, WIDTH x HEIGHT) as a 4:2:0 Y4M video."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def screen_frame(png: bytes) -> np.ndarray:
    """A phone held up to the door's screen: the screen's picture in the middle of the view."""
    screen = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_COLOR)
    scale = min((WIDTH - 40) / screen.shape[1], (HEIGHT - 40) / screen.shape[0], 1.0)
    if scale < 1.0:
        screen = cv2.resize(screen, (int(screen.shape[1] * scale), int(screen.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
    frame = np.full((HEIGHT, WIDTH, 3), 60, dtype=np.uint8)  # the dark wall around the panel
    top, left = (HEIGHT - screen.shape[0]) // 2, (WIDTH - screen.shape[1]) // 2
    frame[top:top + screen.shape[0], left:left + screen.shape[1]] = screen
    return frame
