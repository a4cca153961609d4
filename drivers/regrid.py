"""Reading a QR code whose module grid is bent: printed on cloth or curved paper, or a frame
whose detected corners are a little off.

zxing-cpp finds such a symbol (its corners and version) but samples it on a straight
grid, so modules far from the corners are read from their neighbours and the error
correction gives up. Here the symbol is sampled again on a grid that follows it:

1. rectify the detected quadrilateral to `PX` pixels a module;
2. find the three finder patterns and the bottom-right alignment pattern near where they
   should be (template matching) and undo their displacements with a smooth field;
3. coarse to fine, in windows of 8, 6 and 4 modules, find the shift that puts the window's
   edges on module boundaries (edges of a QR code only ever fall between modules) and undo
   that smooth field too;
4. read each module at its centre and decode the clean picture this makes.

Step 3 assumes the residual error is under half a module, which step 2 brings about.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

Frame = NDArray[Any]  # an image: grey (H, W) or colour (H, W, 3)

PX = 8  # pixels per module in the rectified symbol
MAX_VERSION = 12  # 65 modules: member codes are version 8-11 (longest member id, store list, act)
MAX_CANDIDATES = 3
WINDOWS = ((8, 4), (6, 3), (4, 2))  # (window, step) in modules, coarse to fine


def _template(modules: NDArray[Any]) -> Frame:
    return cv2.resize(modules.astype(np.float32) * 255, None, fx=PX, fy=PX, interpolation=cv2.INTER_NEAREST)


def _finder() -> Frame:
    t = np.ones((9, 9))  # with its one-module white separator
    t[1:8, 1:8] = 0
    t[2:7, 2:7] = 1
    t[3:6, 3:6] = 0
    return _template(t)


def _alignment() -> Frame:
    t = np.zeros((5, 5))
    t[1:4, 1:4] = 1
    t[2, 2] = 0
    return _template(t)


FINDER, ALIGNMENT = _finder(), _alignment()


def _corners(result: zxingcpp.Barcode) -> NDArray[Any]:
    p = result.position
    return np.array([[p.top_left.x, p.top_left.y], [p.top_right.x, p.top_right.y],
                     [p.bottom_right.x, p.bottom_right.y], [p.bottom_left.x, p.bottom_left.y]], np.float32)


def _displaced(rect: Frame, template: Frame, centre: tuple[float, float]) -> tuple[float, float]:
    """Where `template`, expected centred at `centre`, really is in `rect`: its (dx, dy)."""
    h, w = template.shape
    search = 2 * PX
    x0 = round(centre[0] - w / 2) - search
    y0 = round(centre[1] - h / 2) - search
    pad = search + max(h, w)
    padded = cv2.copyMakeBorder(rect, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    roi = padded[y0 + pad : y0 + pad + h + 2 * search, x0 + pad : x0 + pad + w + 2 * search]
    scores = cv2.matchTemplate(roi, template, cv2.TM_CCOEFF_NORMED)
    _, _, _, (bx, by) = cv2.minMaxLoc(scores)
    return x0 + bx - (centre[0] - w / 2), y0 + by - (centre[1] - h / 2)


def _remap(rect: Frame, fx: NDArray[Any], fy: NDArray[Any]) -> Frame:
    size = rect.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return cv2.remap(rect, xx + fx.astype(np.float32), yy + fy.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _fit_anchors(rect: Frame, n: int) -> Frame:
    """Move the finder and alignment patterns back where they belong (an affine or bilinear field)."""
    size = n * PX
    centres = [(3.5, 3.5), (n - 3.5, 3.5), (3.5, n - 3.5)]
    templates = [FINDER, FINDER, FINDER]
    if n > 21:  # version 2 and up: an alignment pattern 7 modules in from the bottom-right corner
        centres.append((n - 6.5, n - 6.5))
        templates.append(ALIGNMENT)
    at = np.array(centres, np.float32) * PX
    moved = np.array([_displaced(rect, t, (float(x), float(y)))
                      for t, (x, y) in zip(templates, at, strict=True)])
    terms: list[NDArray[Any]] = [np.ones(len(at)), at[:, 0], at[:, 1]]
    if len(at) == 4:
        terms.append(at[:, 0] * at[:, 1])
    basis = np.stack(terms, axis=1)
    cx = np.linalg.lstsq(basis, moved[:, 0], rcond=None)[0]
    cy = np.linalg.lstsq(basis, moved[:, 1], rcond=None)[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    grids = [np.ones_like(xx), xx, yy] + ([xx * yy] if len(at) == 4 else [])
    return _remap(rect, sum(c * g for c, g in zip(cx, grids, strict=True)),
                  sum(c * g for c, g in zip(cy, grids, strict=True)))


def _edge_shifts(grad: NDArray[Any], n: int, centres: NDArray[Any], half: int) -> NDArray[Any]:
    """Per window (rows around centres[i], columns around centres[j]): the shift, in pixels
    (-PX/2..PX/2), that best puts the peaks of `grad` along axis 1 on module boundaries."""
    size = n * PX
    count = len(centres)
    first = centres - half  # each window's first module
    # The column profile of each band of rows, from running sums.
    running = np.concatenate([np.zeros((1, size), np.float32), np.cumsum(grad, axis=0)])
    bands = running[(first + 2 * half) * PX] - running[first * PX]
    # Half-pixel steps, so a shift can be half a pixel.
    fine = np.empty((count, 2 * size), np.float32)
    fine[:, ::2] = bands
    fine[:, 1:-1:2] = (bands[:, :-1] + bands[:, 1:]) / 2
    fine[:, -1] = bands[:, -1]
    # Fold each module onto one: edge strength at each shift, summed over a window's modules.
    folded = np.concatenate([np.zeros((count, 1, 2 * PX), np.float32),
                             np.cumsum(fine.reshape(count, n, 2 * PX), axis=1)], axis=1)
    combs = folded[:, first + 2 * half, :] - folded[:, first, :]
    best = np.argmax(combs, axis=2) / 2.0
    shifts: NDArray[Any] = np.where(best >= PX / 2, best - PX, best).astype(np.float32)
    return shifts


def _fit_edges(rect: Frame, n: int, window: int, step: int) -> Frame:
    size = n * PX
    half = window // 2
    centres = list(range(half, n - half + 1, step))
    if centres[-1] != n - half:
        centres.append(n - half)
    at = np.array(centres)
    dx = _edge_shifts(np.abs(cv2.Sobel(rect, cv2.CV_32F, 1, 0)), n, at, half)
    dy = _edge_shifts(np.abs(cv2.Sobel(rect, cv2.CV_32F, 0, 1)).T, n, at, half).T
    # One shift per window centre, spread smoothly over the symbol.
    return _remap(rect, cv2.resize(dx, (size, size)), cv2.resize(dy, (size, size)))


def _modules(rect: Frame, n: int) -> Frame:
    """The symbol as a clean picture: each module read at its centre, with a quiet zone."""
    centre = slice(PX // 2 - 1, PX // 2 + 1)
    levels = rect.reshape(n, PX, n, PX)[:, centre, :, centre].mean(axis=(1, 3)).astype(np.uint8)
    _, binary = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    clean = np.pad(binary, 4, constant_values=255)
    return cv2.resize(clean, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)


_QR_ANY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def regrid_read(grey: Frame) -> list[str]:
    """Texts of QR symbols zxing-cpp found in `grey` but could not decode, read on a bent grid."""
    model2 = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCodeModel2)
    detected = zxingcpp.read_barcodes(grey, formats=model2,
                                      return_errors=True, try_invert=False)
    texts: list[str] = []
    for result in [r for r in detected if not r.valid][:MAX_CANDIDATES]:
        extra: dict[str, object] = dict(result.extra) if isinstance(result.extra, dict) else {}
        version = str(extra.get("Version", ""))
        if not version.isdigit() or not 1 <= int(version) <= MAX_VERSION:
            continue
        n = 17 + 4 * int(version)
        square = np.array([[0, 0], [n * PX, 0], [n * PX, n * PX], [0, n * PX]], np.float32)
        warp = cv2.getPerspectiveTransform(_corners(result), square)
        rect = cv2.warpPerspective(grey, warp, (n * PX, n * PX), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        rect = _fit_anchors(rect, n)
        for window, step in WINDOWS:
            rect = _fit_edges(rect, n, window, step)
        found = zxingcpp.read_barcodes(_modules(rect, n), formats=_QR_ANY,
                                       text_mode=zxingcpp.TextMode.Plain, try_invert=False)
        texts += [r.text for r in found if r.valid and r.text not in texts]
    return texts
