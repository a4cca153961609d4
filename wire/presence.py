"""Presence codes (contract §9), the formula: the door's screen shows a QR that changes every
`window_seconds`; an app command for an act that needs presence must carry (claim "pc") a code the
screen showed in the last `accept_seconds`.

Code for window n = floor(t / window_seconds), door time t: the first 10 characters of the base32 of
HMAC-SHA256(secret, "{store}/{door}/{n}"). Where the secret lives is the door's business
(controller.presence).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

CODE_CHARS = 10


def screen_url(door_url: str, code: str) -> str:
    """What the screen's QR holds: the door's §8 URL with `pc` added."""
    return f"{door_url}{'&' if '?' in door_url else '?'}pc={code}"


class PresenceCodes:
    """The codes of one door. Pure arithmetic on door time; holds the secret, never shows it."""

    __slots__ = ("_label", "_secret", "accept_seconds", "window_seconds")

    def __init__(
        self, secret: bytes, store: str, door: str, window_seconds: int, accept_seconds: int
    ) -> None:
        self._secret = secret
        self._label = f"{store}/{door}/"
        self.window_seconds, self.accept_seconds = window_seconds, accept_seconds

    def __repr__(self) -> str:  # never the secret, in a log line or a traceback
        return f"PresenceCodes({self._label!r}, window {self.window_seconds}s, accept {self.accept_seconds}s)"

    def window(self, t: float) -> int:
        return math.floor(t / self.window_seconds)

    def code(self, window: int) -> str:
        digest = hmac.new(self._secret, f"{self._label}{window}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii")[:CODE_CHARS]

    def current(self, t: float) -> str:
        return self.code(self.window(t))

    def seconds_left(self, t: float) -> float:
        """Until the screen's code changes."""
        return (self.window(t) + 1) * self.window_seconds - t

    def accepts(self, presented: str | None, t: float) -> bool:
        """Is `presented` the code of a window overlapping [t - accept_seconds, t]?"""
        if presented is None:
            return False
        found = False
        for window in range(self.window(t - self.accept_seconds), self.window(t) + 1):
            # Every candidate is compared, in constant time: no timing hint of which one is near.
            found |= hmac.compare_digest(presented.encode(), self.code(window).encode())
        return found
