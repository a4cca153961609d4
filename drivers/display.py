"""The door's screen behind one narrow interface (contract §9), chosen once at startup: a Linux
framebuffer (`/dev/fbN`: HDMI, DSI, or an SPI TFT through fbtft) or the simulator's screen.

A framebuffer's geometry and pixel format come from sysfs (`/sys/class/graphics/fbN/virtual_size`,
`bits_per_pixel`, `stride`); 16 bits per pixel is RGB565, 32 is XRGB8888, both little-endian as the
Pi's drivers use them. Images are RGB, height x width x 3, uint8.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

SYSFS_GRAPHICS = Path("/sys/class/graphics")
Image = NDArray[Any]  # RGB, height x width x 3, uint8


class DisplayError(OSError):
    """The screen cannot be used; the message names the file and why."""


class Screen(Protocol):
    width: int
    height: int

    def show(self, image: Image, text: str | None, rows: tuple[int, int] | None = None) -> None:
        """Put `image` (RGB, height x width) on the screen; `text` is what its QR says, if any.
        `rows` (first, end): only those rows changed since the last picture, a screen may write just
        them."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int
    bits_per_pixel: int
    stride: int  # bytes per row, padding included

    @property
    def frame_bytes(self) -> int:
        return self.stride * self.height


def _sysfs_value(directory: Path, name: str) -> str:
    try:
        return (directory / name).read_text().strip()
    except OSError as exc:
        raise DisplayError(f"{directory / name}: cannot read ({exc.strerror})") from None


def read_geometry(device: str, sysfs: Path = SYSFS_GRAPHICS) -> Geometry:
    """A framebuffer's geometry from sysfs; DisplayError naming the file when it is not usable."""
    directory = sysfs / Path(device).name
    size = _sysfs_value(directory, "virtual_size")
    try:
        width, height = (int(part) for part in size.split(","))
        bpp = int(_sysfs_value(directory, "bits_per_pixel"))
        stride = int(_sysfs_value(directory, "stride"))
    except ValueError:
        raise DisplayError(f"{directory}: unreadable geometry (virtual_size {size!r})") from None
    if bpp not in (16, 32):
        raise DisplayError(f"{directory / 'bits_per_pixel'}: {bpp} bits per pixel; RGB565 (16) and "
                           "XRGB8888 (32) are supported")
    if width <= 0 or height <= 0 or stride < width * bpp // 8:
        raise DisplayError(f"{directory}: impossible geometry {width}x{height}, stride {stride}")
    return Geometry(width, height, bpp, stride)


def pack(image: Image, geometry: Geometry) -> bytes:
    """RGB pixels in the framebuffer's format, rows padded to its stride."""
    rgb = image.astype(np.uint16)
    if geometry.bits_per_pixel == 16:
        pixels = ((rgb[..., 0] >> 3) << 11) | ((rgb[..., 1] >> 2) << 5) | (rgb[..., 2] >> 3)
        row = pixels.astype("<u2").view(np.uint8).reshape(geometry.height, geometry.width * 2)
    else:
        bgrx = np.empty((geometry.height, geometry.width, 4), dtype=np.uint8)
        bgrx[..., :3] = image[..., ::-1]
        bgrx[..., 3] = 255
        row = bgrx.reshape(geometry.height, geometry.width * 4)
    pad = geometry.stride - row.shape[1]
    if pad:
        row = np.pad(row, ((0, 0), (0, pad)))
    return row.tobytes()


def unpack(raw: bytes, geometry: Geometry) -> Image:
    """The framebuffer's bytes back as RGB (what a camera pointed at the screen would see)."""
    rows = np.frombuffer(raw[:geometry.frame_bytes], dtype=np.uint8).reshape(geometry.height, geometry.stride)
    out = np.empty((geometry.height, geometry.width, 3), dtype=np.uint8)
    if geometry.bits_per_pixel == 16:
        pixels = rows[:, :geometry.width * 2].copy().view("<u2").astype(np.uint32)
        out[..., 0] = ((pixels >> 11) & 0x1F) * 255 // 31
        out[..., 1] = ((pixels >> 5) & 0x3F) * 255 // 63
        out[..., 2] = (pixels & 0x1F) * 255 // 31
    else:
        bgrx = rows[:, :geometry.width * 4].reshape(geometry.height, geometry.width, 4)
        out[..., 0], out[..., 1], out[..., 2] = bgrx[..., 2], bgrx[..., 1], bgrx[..., 0]
    return out


class FramebufferScreen:
    """A Linux framebuffer device: each image is written whole at offset 0."""

    def __init__(self, device: str, sysfs: Path = SYSFS_GRAPHICS) -> None:
        self.device = device
        self.geometry = read_geometry(device, sysfs)
        self.width, self.height = self.geometry.width, self.geometry.height
        try:
            self._fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise DisplayError(f"{device}: cannot open ({exc.strerror}); is the door's user in the "
                               "video group?") from None

    def show(self, image: Image, text: str | None, rows: tuple[int, int] | None = None) -> None:
        if image.shape != (self.height, self.width, 3):
            raise ValueError(f"image is {image.shape}, the screen {self.height}x{self.width}x3")
        first, end = rows if rows is not None else (0, self.height)
        first, end = max(0, first), min(self.height, end)
        band = Geometry(self.width, end - first, self.geometry.bits_per_pixel, self.geometry.stride)
        data = pack(image[first:end], band)
        try:
            os.pwrite(self._fd, data, first * self.geometry.stride)
        except OSError as exc:
            raise DisplayError(f"{self.device}: write failed ({exc.strerror})") from None

    def close(self) -> None:
        os.close(self._fd)
