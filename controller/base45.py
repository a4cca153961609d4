"""Base45 (RFC 9285), strict: every malformed input raises ValueError.

Encoding, not cryptography: small enough to own, and strictness matters more
than speed here (a QR text is at most 512 characters).
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


def b45encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode base45; raise ValueError for bad characters, length or overflowing groups."""
    if len(text) % 3 == 1:
        raise ValueError("base45 length leaves a single dangling character")
    try:
        values = [_VALUE[ch] for ch in text]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the base45 alphabet") from None
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        if n > 0xFFFF:
            raise ValueError("base45 triple exceeds 16 bits")
        out.append(n >> 8)
        out.append(n & 0xFF)
    if full != len(values):
        n = values[-2] + values[-1] * 45
        if n > 0xFF:
            raise ValueError("base45 pair exceeds 8 bits")
        out.append(n)
    return bytes(out)
