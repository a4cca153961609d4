"""The decode pipeline: a fast path and measured fallbacks (see bench/decode.py for the numbers).

1. zxing-cpp on the full grey frame, dark-on-light only (finds ~93% of phone-at-the-door
   frames in 0.5-1.5 ms; trying inverted codes too costs 40-60% more on every frame).
2. When that fails: find the textured region a code makes (a cheap gradient-density map on a
   quarter-size frame) and retry there: Wiener-deconvolved along the measured direction of the
   hand's motion smear, then against focus blur, then median-filtered, each upscaled 2x; then
   a symbol zxing-cpp found but could not read, sampled again on a grid that follows its bend
   (drivers/regrid.py: codes on cloth or curved paper); then the full frame inverted (a
   screen in dark mode), the GlobalHistogram binarizer on the full frame, plain and smoothed
   (real photographs with uneven light, a code printed over a picture), and pyzbar on the
   region (a second, independent decoder; still images only, as it never read a frame the
   others missed and costs 5-10x more).

The fallbacks were chosen greedily by how many failures of the fast path each one
recovers on the generated phone set and the real photographs. A still image gets them
all, in order, until one finds a code. A video frame gets the fast path, then the one
deconvolution its blur calls for (a motion smear or focus blur, measured on the frame),
then one of the cheap fallbacks, the next frame the next one: no frame costs much, and
the phone, in view for many frames, still meets every fallback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

from drivers.regrid import regrid_read

Frame = NDArray[Any]  # an image: grey (H, W) or colour (H, W, 3)

_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
MAX_REGION_SIDE = 400


def zxing_read(img: Frame, binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage) -> list[str]:
    """QR texts zxing-cpp reads in `img` as the pipeline asks it to (its fast path on a frame)."""
    # Dark-on-light only: the inverted fallback covers dark screens at no cost to every frame.
    # Plain text: the code's own characters, control characters included (the default "human
    # readable" mode would turn them into "<SOH>" and the like).
    results = zxingcpp.read_barcodes(img, formats=_QR, binarizer=binarizer, try_invert=False,
                                     text_mode=zxingcpp.TextMode.Plain)
    return [r.text for r in results if r.valid]


def pyzbar_read(img: Frame) -> list[str]:
    """QR texts pyzbar (zbar) reads in `img`."""
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


def _fft_size(n: int) -> int:
    """The smallest size from n up whose only prime factors are 2, 3 and 5 (fast to transform)."""
    while True:
        rest = n
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return n
        n += 1


def _transfer(psf: NDArray[Any], height: int, width: int) -> NDArray[Any]:
    """The frequency response of a small centred, point-symmetric kernel on an rfft2 grid.

    Computed from the kernel's few taps as two small matrix products (cos/sin are separable),
    instead of a full-size transform of a mostly empty kernel. Point symmetry makes it real.
    """
    taps = np.arange(psf.shape[0], dtype=np.float32) - psf.shape[0] // 2
    fy = np.fft.fftfreq(height).astype(np.float32)[:, None] * (2 * np.pi) * taps
    fx = np.fft.rfftfreq(width).astype(np.float32)[:, None] * (2 * np.pi) * taps
    kernel = psf.astype(np.float32)
    response: NDArray[Any] = np.cos(fy) @ kernel @ np.cos(fx).T - np.sin(fy) @ kernel @ np.sin(fx).T
    return response


def _wiener(img: Frame, psf: NDArray[Any], noise: float = 0.01) -> Frame:
    """Wiener deconvolution of `img` by the blur kernel `psf` (square, odd-sized, point-symmetric)."""
    h, w = img.shape
    height, width = _fft_size(h), _fft_size(w)
    # Edge pixels repeated into the padding: no false edge for the filter to ring on.
    data = cv2.copyMakeBorder(img, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE).astype(np.float32)
    response = _transfer(psf, height, width)
    inverse = response / (response * response + noise)  # the response is real: no conjugate needed
    restored = np.fft.irfft2(np.fft.rfft2(data) * inverse, s=(height, width))
    return np.clip(restored[:h, :w], 0, 255).astype(np.uint8)


def _deblur(img: Frame, sigma: float = 1.25) -> Frame:
    """Undo focus blur: Wiener deconvolution with a Gaussian kernel."""
    k = cv2.getGaussianKernel(15, sigma)
    return _wiener(img, k @ k.T)


def smear_direction(img: Frame) -> tuple[float, float]:
    """The direction a motion smear runs in (degrees, counter-clockwise from the x axis as seen)
    and how one-sided the image's edges are (0 = all edges along one direction, 1 = no preference).

    A QR code's edges are as strong across as along (its grid is the same turned 90 degrees), so
    when the edges in the middle of the region are weaker along one direction, that is the
    direction the hand moved: the structure tensor's weakest axis.
    """
    h, w = img.shape
    middle = img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(np.float32)
    gx = cv2.Sobel(middle, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(middle, cv2.CV_32F, 0, 1)
    a, b, c = float((gx * gx).sum()), float((gx * gy).sum()), float((gy * gy).sum())
    spread = math.hypot(a - c, 2 * b)
    if a + c <= 0:
        return 0.0, 1.0
    strongest = 0.5 * math.atan2(2 * b, a - c)  # image axes: y points down
    weakest = math.degrees(strongest) + 90.0
    return (-weakest) % 180.0, (a + c - spread) / (a + c + spread)


def motion_kernel(half_length: int, angle: float) -> NDArray[Any]:
    """A straight smear of 2 * half_length + 1 pixels at `angle` degrees (counter-clockwise)."""
    n = 2 * half_length + 1
    kernel = np.zeros((n, n), np.float32)
    kernel[half_length, :] = 1.0
    turn = cv2.getRotationMatrix2D((half_length, half_length), angle, 1.0)
    smear: NDArray[Any] = cv2.warpAffine(kernel, turn, (n, n))
    return smear / max(float(smear.sum()), 1e-6)


# Edges this one-sided (smear_direction's evenness) are a hand's motion smear; above it, the
# blur is focus. Measured on the generated set: choosing by it, one deconvolution reads 66 of
# the 67 frames that either would.
SMEARED = 0.6


def _read_unsmeared(region: Frame, angle: float) -> list[str]:
    """Undo a motion smear along `angle` (a 5-pixel smear: a hand at 15 fps), then read 2x."""
    return zxing_read(_up(_wiener(region, motion_kernel(2, angle)), 2))


def _read_deblurred(region: Frame) -> list[str]:
    return zxing_read(_up(_deblur(region), 2))


@dataclass(frozen=True)
class Fallback:
    name: str
    read: Callable[[Frame, Frame | None], list[str]]  # (grey frame, code region or None) -> texts
    rotates: bool = True  # the camera tries one of these a frame, after the measured deconvolution


def _on_region(step: Callable[[Frame], list[str]]) -> Callable[[Frame, Frame | None], list[str]]:
    return lambda _grey, region: step(region) if region is not None else []


UNSMEAR = Fallback("region-unsmear-up2", _on_region(lambda r: _read_unsmeared(r, smear_direction(r)[0])),
                   rotates=False)
DEBLUR = Fallback("region-deblur-up2", _on_region(_read_deblurred), rotates=False)
# In the order measured to pay off (bench/decode.py, `generated_rate` and `photo_rate`).
FALLBACKS: list[Fallback] = [
    UNSMEAR,
    DEBLUR,
    Fallback("region-up2-median", _on_region(lambda r: zxing_read(cv2.medianBlur(_up(r, 2), 3)))),
    Fallback("regrid", lambda grey, _region: regrid_read(grey)),
    Fallback("inverted", lambda grey, _region: zxing_read(cv2.bitwise_not(grey))),
    Fallback("zxing-global", lambda grey, _region: zxing_read(grey, zxingcpp.Binarizer.GlobalHistogram)),
    # A code printed over a picture: smoothing first keeps the picture's texture out of the threshold.
    Fallback("smoothed-global", lambda grey, _region: zxing_read(cv2.GaussianBlur(grey, (3, 3), 0),
                                                            zxingcpp.Binarizer.GlobalHistogram)),
    Fallback("pyzbar", lambda grey, region: pyzbar_read(_up(region, 2) if region is not None else grey),
             rotates=False),
]
ROTATION = [f for f in FALLBACKS if f.rotates]


class DecodePipeline:
    def __init__(self) -> None:
        self.last_step: str | None = None  # which step found the code (for benchmarks and logs)
        self._next_fallback = 0  # video mode: which of ROTATION this frame tries

    def decode(self, frame: Frame) -> list[str]:
        """A still image: the fast path, then every fallback until one finds a code."""
        grey = to_grey(frame)
        found = zxing_read(grey)
        if found:
            self.last_step = "zxing"
            return found
        region = code_region(grey)
        for fallback in FALLBACKS:
            found = fallback.read(grey, region)
            if found:
                self.last_step = fallback.name
                return found
        self.last_step = None
        return []

    def decode_video(self, frame: Frame) -> list[str]:
        """A video frame: the fast path; when it fails, the one deconvolution the frame's blur
        calls for, then one cheap fallback, a different one each frame.

        A phone is in view for many frames, so the cheap fallbacks are spread over them instead
        of all spent on one: every frame costs at most the fast path and about two steps.
        """
        grey = to_grey(frame)
        found = zxing_read(grey)
        if found:
            self.last_step = "zxing"
            return found
        region = code_region(grey)
        if region is not None:
            angle, evenness = smear_direction(region)
            if evenness < SMEARED:
                self.last_step, found = UNSMEAR.name, _read_unsmeared(region, angle)
            else:
                self.last_step, found = DEBLUR.name, _read_deblurred(region)
            if found:
                return found
        fallback = ROTATION[self._next_fallback % len(ROTATION)]
        self._next_fallback += 1
        found = fallback.read(grey, region)
        self.last_step = fallback.name if found else None
        return found
