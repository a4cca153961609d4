"""Code readers: a narrow interface every reader (serial scanner, camera) implements.

A reader runs on its own thread (or process) and hands each code it sees to
`deliver(text, seen_at)`; it reports its health through `health(ok, detail)`.
Both callbacks must be cheap and thread-safe: the daemon's only post to the reactor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from wire.codes import MAX_CODE_CHARS

# A reader hands over at most one character more than the longest code text (contract §1), so the
# verifier can say "over 512" instead of reading a cut-off code.
__all__ = ["MAX_CODE_CHARS", "CodeReader", "Deliver", "Health", "LineSplitter", "ReaderConfig"]

Deliver = Callable[[str, float], None]  # code text, time.monotonic() when it was seen
Health = Callable[[bool, str], None]  # ok, what happened


@dataclass(frozen=True)
class ReaderConfig:
    """One `[[reader]]` of the configuration (checked by controller.config, which fills defaults)."""

    name: str
    type: str  # camera | serial
    side: str  # entry | exit
    source: str | int | None = None  # camera only
    port: str | None = None  # serial only
    baudrate: int | None = None  # serial only


class CodeReader(Protocol):
    name: str
    side: str

    def start(self, deliver: Deliver, health: Health) -> None: ...
    def stop(self) -> None: ...


class LineSplitter:
    """Bytes from a scanner into lines: CR, LF or CRLF ends a line; partial lines wait for the
    rest; an over-long line is cut so the verifier reports it `malformed`, and the rest of it
    (up to the next line end) is dropped rather than read as a new code."""

    def __init__(self, max_chars: int = MAX_CODE_CHARS) -> None:
        self.max_chars = max_chars
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if byte in (0x0A, 0x0D):
                if self._discarding:
                    self._discarding = False
                elif self._buf:
                    lines.append(self._text())
                self._buf.clear()
                continue
            if self._discarding:
                continue
            self._buf.append(byte)
            if len(self._buf) > self.max_chars:
                # One character past the limit: enough for the verifier to say "over 512".
                lines.append(self._text())
                self._buf.clear()
                self._discarding = True
        return lines

    def _text(self) -> str:
        return self._buf.decode("utf-8", errors="replace").strip()
