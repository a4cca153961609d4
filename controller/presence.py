"""Presence codes (contract §9), the door's secret. The door's screen shows a QR that changes every
`window_seconds`; an app command for an act that needs presence must carry (claim "pc") a code the
screen showed in the last `accept_seconds` (the formula: wire.presence). The secret is 32 random
bytes made at the door's first start in its state directory (mode 0600), never published or logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "presence.key"
SECRET_BYTES = 32


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
