"""The pictures of the door's QR: the live screen by the door (contract §9) and the printed poster
for doors without one. Drawn with OpenCV on numpy arrays; the fixed Japanese lines come as pictures
(controller/assets/, made by scripts/render_signage_text.py) since OpenCV's fonts have none."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno
from numpy.typing import NDArray

ASSETS = Path(__file__).resolve().parent / "assets"
# The guide's one-line instruction and the offline notice, in Japanese (pictures) and English.
JAPANESE_LINES = {
    "scan_ja": "アプリでこのQRコードを読み取り、「入店する」を押してください",
    "offline_ja": "ただいまオフラインです。アプリからは開錠できません",
}
ENGLISH_LINES = {
    "scan": "Scan this code in the officepass app, then press Check in",
    "offline": "Offline: the app cannot open this door right now",
}
BLACK, WHITE, GREY, BLUE = (0, 0, 0), (255, 255, 255), (200, 200, 200), (29, 78, 216)
FONT = cv2.FONT_HERSHEY_SIMPLEX
POSTER_DPI = 300
A5_MM = (148, 210)

Picture = NDArray[Any]  # RGB, height x width x 3, uint8 (gray pictures: height x width)


def qr_modules(text: str) -> NDArray[np.uint8]:
    """The QR's modules with its 4-module quiet zone: 0 dark, 255 light."""
    matrix = np.array(segno.make_qr(text, error="m").matrix, dtype=np.uint8)
    return np.pad(np.where(matrix > 0, 0, 255).astype(np.uint8), 4, constant_values=255)


def qr_picture(text: str, side: int) -> NDArray[np.uint8]:
    """The QR drawn `side` pixels square (at most), whole pixels per module for a clean scan."""
    modules = qr_modules(text)
    size = max(1, side // modules.shape[0]) * modules.shape[0]
    return np.asarray(cv2.resize(modules, (size, size), interpolation=cv2.INTER_NEAREST), dtype=np.uint8)


@cache
def _line_picture(name: str) -> NDArray[np.uint8] | None:
    picture = cv2.imread(str(ASSETS / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    return None if picture is None else np.asarray(picture, dtype=np.uint8)


def _fit(picture: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    scale = min(width / picture.shape[1], height / picture.shape[0], 1.0)
    size = (max(1, int(picture.shape[1] * scale)), max(1, int(picture.shape[0] * scale)))
    return np.asarray(cv2.resize(picture, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _paste_gray(canvas: Picture, picture: NDArray[np.uint8], x: int, y: int) -> int:
    """Dark ink of a gray picture onto the canvas at (x, y); returns the height used."""
    h, w = picture.shape[:2]
    h, w = min(h, canvas.shape[0] - y), min(w, canvas.shape[1] - x)
    if h <= 0 or w <= 0:
        return 0
    region = canvas[y:y + h, x:x + w]
    ink = picture[:h, :w]
    region[...] = np.minimum(region, ink[..., None] if canvas.ndim == 3 else ink)
    return h


def _text(canvas: Picture, text: str, x: int, y: int, width: int, height: int,
          colour: tuple[int, ...] = BLACK, thickness: int = 2) -> int:
    """One line of ASCII text scaled to fit `width` x `height`, top-left at (x, y); returns its height."""
    (w, h), base = cv2.getTextSize(text, FONT, 1.0, thickness)
    scale = min(width / max(w, 1), height / max(h + base, 1))
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    cv2.putText(canvas, text, (x, y + h), FONT, scale, colour, thickness, cv2.LINE_AA)
    return h + base


def _japanese(canvas: Picture, name: str, x: int, y: int, width: int, height: int) -> int:
    picture = _line_picture(name)
    return 0 if picture is None else _paste_gray(canvas, _fit(picture, width, height), x, y)


def _screen_metrics(width: int, height: int) -> tuple[int, int]:
    """The screen's margin and the countdown bar's height, in pixels."""
    return max(4, min(width, height) // 40), max(6, height // 30)


def _bar_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the countdown bar goes: left, top, right, bottom."""
    margin, bar = _screen_metrics(width, height)
    return margin, height - margin - bar, width - margin, height - margin


def render_screen(
    width: int, height: int, store: str, door: str, qr_text: str | None, fraction_left: float
) -> Picture:
    """The door's screen: the QR large, the store, the guide's line, and a bar for the time the code
    has left. Without `qr_text` (the cloud link is down) the QR is hidden and the screen says why."""
    canvas = screen_base(width, height, store, door, qr_text)
    if qr_text is not None:
        draw_bar(canvas, fraction_left)
    return canvas


def draw_bar(canvas: Picture, fraction_left: float) -> tuple[int, int]:
    """(Re)draw the countdown bar on a screen picture; returns the rows it covers."""
    left, top, right, bottom = _bar_box(canvas.shape[1], canvas.shape[0])
    filled = left + round((right - left) * min(max(fraction_left, 0.0), 1.0))
    cv2.rectangle(canvas, (left, top), (right, bottom), GREY, -1)
    if filled > left:
        cv2.rectangle(canvas, (left, top), (filled, bottom), BLUE, -1)
    return top, bottom + 1


def screen_base(width: int, height: int, store: str, door: str, qr_text: str | None) -> Picture:
    """Everything on the screen but the bar: drawn once per code."""
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    margin, bar = _screen_metrics(width, height)
    landscape = width >= height
    side = (height - 3 * margin - bar) if landscape else min(width - 2 * margin, int(height * 0.6))
    if qr_text is not None:
        qr = qr_picture(qr_text, side)
        _paste_gray(canvas, qr, margin + (side - qr.shape[1]) // 2, margin + (side - qr.shape[0]) // 2)
    else:
        cv2.rectangle(canvas, (margin, margin), (margin + side, margin + side), GREY, -1)
        _text(canvas, "OFFLINE", margin + side // 8, margin + side // 2 - side // 12, side * 3 // 4,
              side // 6)
    if landscape:
        tx, ty, tw = 2 * margin + side, margin, width - 3 * margin - side
    else:
        tx, ty, tw = margin, 2 * margin + side, width - 2 * margin
    text_height = max(12, (height - bar - margin - ty) // 8)
    ty += _text(canvas, store, tx, ty, tw, text_height * 2, BLACK, 3) + margin
    ty += _text(canvas, f"door {door}", tx, ty, tw, text_height, (90, 90, 90)) + margin * 2
    line = "offline" if qr_text is None else "scan"
    ty += _japanese(canvas, f"{line}_ja", tx, ty, tw, text_height) + margin
    _text(canvas, ENGLISH_LINES[line], tx, ty, tw, text_height, BLACK, 1)
    return canvas


def poster_size(dpi: int = POSTER_DPI) -> tuple[int, int]:
    """A5 portrait in pixels at `dpi`."""
    return round(A5_MM[0] / 25.4 * dpi), round(A5_MM[1] / 25.4 * dpi)


def render_poster(store: str, door: str, url: str, dpi: int = POSTER_DPI) -> NDArray[np.uint8]:
    """The static poster (gray, A5 portrait): store, the QR of the door's page, the guide's line."""
    width, height = poster_size(dpi)
    canvas = np.full((height, width), 255, dtype=np.uint8)
    margin = width // 12
    usable = width - 2 * margin
    y = margin
    y += _text(canvas, store, margin, y, usable, height // 12, (0,), 8) + margin // 3
    y += _text(canvas, f"door {door}", margin, y, usable // 2, height // 30, (80,), 4) + margin // 2
    qr = qr_picture(url, usable)
    _paste_gray(canvas, qr, (width - qr.shape[1]) // 2, y)
    y += qr.shape[0] + margin // 2
    y += _japanese(canvas, "scan_ja", margin, y, usable, height // 22) + margin // 3
    _text(canvas, ENGLISH_LINES["scan"], margin, y, usable, height // 30, (0,), 3)
    return canvas
