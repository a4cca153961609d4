"""Base45 (RFC 9285), strict: every malformed input raises ValueError.

Encoding, not cryptography: small enough to own, and strictness matters more
than speed here (a QR text is at most 512 characters).
"""

from __future__ import annotations

import struct

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
# bytes.translate table: ASCII character -> its base45 value, anything else -> _INVALID.
_TRANSLATE = bytes(ALPHABET.index(chr(i)) if chr(i) in ALPHABET else _INVALID for i in range(256))


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
        values = text.encode("ascii").translate(_TRANSLATE)
    except UnicodeEncodeError:
        raise ValueError("base45 text holds a non-ASCII character") from None
    if _INVALID in values:
        bad = text[values.index(_INVALID)]
        raise ValueError(f"character {bad!r} is not in the base45 alphabet")
    # Whole triples at once (this sits on the hot path of every code a door checks).
    # zip stops at the last whole triple; a trailing pair is handled below.
    triples = zip(values[0::3], values[1::3], values[2::3], strict=False)
    groups = [a + b * 45 + c * 2025 for a, b, c in triples]
    if groups and max(groups) > 0xFFFF:
        raise ValueError("base45 triple exceeds 16 bits")
    out = struct.pack(f">{len(groups)}H", *groups)
    if len(values) % 3 == 2:
        n = values[-2] + values[-1] * 45
        if n > 0xFF:
            raise ValueError("base45 pair exceeds 8 bits")
        out += bytes((n,))
    return out
