"""A one-page PDF holding one gray picture at a given page size: the printed poster. Written by hand
(PDF 1.4, one Flate-compressed image XObject); a door needs no PDF library for a single page."""

from __future__ import annotations

import zlib
from typing import Any

from numpy.typing import NDArray

POINTS_PER_MM = 72 / 25.4


def picture_pdf(picture: NDArray[Any], page_mm: tuple[float, float]) -> bytes:
    """`picture` (gray, height x width, uint8) filling a page of `page_mm` (width, height)."""
    height, width = picture.shape[:2]
    page_w, page_h = (round(mm * POINTS_PER_MM, 2) for mm in page_mm)
    data = zlib.compress(picture.astype("uint8").tobytes(), 9)
    content = f"q {page_w} 0 0 {page_h} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_w} {page_h}] "
        f"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceGray "
        f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode()
        + data + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
