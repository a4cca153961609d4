"""The decode pipeline: a fast path and measured fallbacks (see bench/decode.py for the numbers).

1. zxing-cpp on the full grey frame (finds ~90% of phone-at-the-door frames, ~1-2 ms).
2. When that fails: find the textured region a code makes (a cheap gradient-density map on a
   quarter-size frame) and retry there, upscaled: median-filtered 2x, opened 2x, 3x, sharpened
   2x, Wiener-deblurred 2x; then the GlobalHistogram binarizer on the full frame (recovers real
   photographs with uneven light) and pyzbar on the region (a second, independent decoder).

The fallbacks were chosen greedily by how many failures of the fast path each one
recovers on the generated phone set and the real photographs. A still image gets them
all, in order, until one finds a code; a video frame gets the fast path and one
fallback, the next frame the next one, so no frame costs much while the phone, in view
for many frames, still meets every fallback.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import zxingcpp

Frame = np.ndarray

_QR = zxingcpp.BarcodeFormat.QRCode
MAX_REGION_SIDE = 400
_GLOBAL = zxingcpp.Binarizer.GlobalHistogram


def _zxing(img: Frame, binarizer: zxingcpp.Binarizer | None = None) -> list[str]:
    if binarizer is None:
        results = zxingcpp.read_barcodes(img, formats=_QR)
    else:
        results = zxingcpp.read_barcodes(img, formats=_QR, binarizer=binarizer)
    return [r.text for r in results if r.valid]


def _pyzbar(img: Frame) -> list[str]:
    from pyzbar import pyzbar  # loads libzbar; only when a fallback needs it

    found = pyzbar.decode(img, symbols=[pyzbar.ZBarSymbol.QRCODE])
    return [r.data.decode("utf-8", errors="replace") for r in found]


def to_grey(frame: Frame) -> Frame:
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return frame


def code_region(grey: Frame, shrink: int = 4) -> Frame | None:
    """The most textured region of the frame (where a QR code's modules are), with a margin."""
    small = cv2.resize(grey, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA)
    if small.size == 0:
        return None
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1)
    density = cv2.boxFilter(np.abs(gx) + np.abs(gy), -1, (7, 7))
    peak = float(density.max())
    if peak <= 0:
        return None
    mask = (density > 0.5 * peak).astype(np.uint8)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[i, :4])
    x0, y0 = max(0, int((x - 0.15 * w) * shrink)), max(0, int((y - 0.15 * h) * shrink))
    x1 = min(grey.shape[1], int((x + 1.15 * w) * shrink))
    y1 = min(grey.shape[0], int((y + 1.15 * h) * shrink))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    region = grey[y0:y1, x0:x1]
    # The fallbacks exist for small, blurred codes; a big region is shrunk so that upscaling it
    # stays cheap (a code that big is read by the fast path anyway).
    side = max(region.shape)
    if side > MAX_REGION_SIDE:
        scale = MAX_REGION_SIDE / side
        region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return region


def _up(img: Frame, factor: float) -> Frame:
    return cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)


def _sharpen(img: Frame) -> Frame:
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    return cv2.addWeighted(img, 1.7, blurred, -0.7, 0)


def _deblur(img: Frame, sigma: float = 2.5, noise: float = 0.01) -> Frame:
    """Wiener deconvolution with a Gaussian blur kernel: undoes focus and motion smear."""
    data = img.astype(np.float32) / 255.0
    k = cv2.getGaussianKernel(15, sigma)
    psf = k @ k.T
    transfer = np.fft.rfft2(psf, s=data.shape)
    restored = np.fft.irfft2(
        np.fft.rfft2(data) * np.conj(transfer) / (np.abs(transfer) ** 2 + noise), s=data.shape
    )
    restored = np.roll(restored, (7, 7), (0, 1))  # the kernel's centre back to the origin
    return np.clip(restored * 255.0, 0, 255).astype(np.uint8)


_OPEN_KERNEL = np.ones((2, 2), np.uint8)

# (name, step over the region) in the order measured to pay off.
RegionStep = Callable[[Frame], list[str]]
REGION_STEPS: list[tuple[str, RegionStep]] = [
    ("region-up2-median", lambda r: _zxing(cv2.medianBlur(_up(r, 2), 3))),
    ("region-up2-open", lambda r: _zxing(cv2.morphologyEx(_up(r, 2), cv2.MORPH_OPEN, _OPEN_KERNEL))),
    ("region-up3", lambda r: _zxing(_up(r, 3))),
    ("region-up2-sharpen", lambda r: _zxing(_sharpen(_up(r, 2)))),
    ("region-up2-deblur", lambda r: _zxing(_deblur(_up(r, 2)))),
]


class DecodePipeline:
    def __init__(self) -> None:
        self.last_step: str | None = None  # which step found the code (for benchmarks and logs)
        self._next_fallback = 0  # video mode: which fallback this frame tries

    def _fallbacks(self, grey: Frame) -> list[tuple[str, Callable[[], list[str]]]]:
        steps: list[tuple[str, Callable[[], list[str]]]] = []
        region = code_region(grey)
        if region is not None:
            steps += [(name, lambda fn=fn: fn(region)) for name, fn in REGION_STEPS]  # type: ignore[misc]
        steps.append(("zxing-global", lambda: _zxing(grey, _GLOBAL)))
        steps.append(("pyzbar", lambda: _pyzbar(_up(region, 2) if region is not None else grey)))
        return steps

    def decode(self, frame: Frame) -> list[str]:
        """A still image: the fast path, then every fallback until one finds a code."""
        grey = to_grey(frame)
        found = _zxing(grey)
        if found:
            self.last_step = "zxing"
            return found
        for name, step in self._fallbacks(grey):
            found = step()
            if found:
                self.last_step = name
                return found
        self.last_step = None
        return []

    def decode_video(self, frame: Frame) -> list[str]:
        """A video frame: the fast path plus one fallback, a different one each frame.

        A phone is in view for many frames, so the fallbacks are spread over them instead of
        all spent on one: every frame costs about the fast path plus one step.
        """
        grey = to_grey(frame)
        found = _zxing(grey)
        if found:
            self.last_step = "zxing"
            return found
        steps = self._fallbacks(grey)
        name, step = steps[self._next_fallback % len(steps)]
        self._next_fallback += 1
        found = step()
        self.last_step = name if found else None
        return found
