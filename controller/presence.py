"""Presence codes (contract §9): the door's screen shows a QR that changes every `window_seconds`;
an app command for an act that needs presence must carry (claim "pc") a code the screen showed in
the last `accept_seconds`. A photo of the screen taken earlier, or the code of another door, is
refused `not_present`.

Code for window n = floor(t / window_seconds), door time t: the first 10 characters of the base32 of
HMAC-SHA256(secret, "{store}/{door}/{n}"). The secret is 32 random bytes made at the door's first
start in its state directory (mode 0600), never published or logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets
from pathlib import Path

SECRET_FILE = "presence.key"
SECRET_BYTES = 32
CODE_CHARS = 10


class PresenceSecretError(OSError):
    """The secret file cannot be made or read; the message names the file and why."""


def load_secret(state_dir: Path) -> bytes:
    """The door's presence secret, made on first use (0600). Raises PresenceSecretError."""
    path = state_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise PresenceSecretError(f"{path}: cannot create the presence secret ({exc.strerror})") from None
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: only the door's own user may read it
        secret = path.read_bytes()
    except OSError as exc:
        raise PresenceSecretError(f"{path}: cannot read the presence secret ({exc.strerror})") from None
    if len(secret) != SECRET_BYTES:
        raise PresenceSecretError(f"{path}: the presence secret is {len(secret)} bytes, not {SECRET_BYTES}; "
                                  "remove the file to make a new one")
    return secret


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
