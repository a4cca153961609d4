"""The signing keys: Ed25519 private keys in files of their own (0600, in a 0700 directory, outside
the repository), one kid active for minting, the others still trusted by doors during a rotation.

Minting follows contract §1 and §4 exactly: the door's own `wire.codes` writes the COSE, so
the same verifier that passes the shared vectors checks the service's output.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire.codes import ReleaseTarget, mint_code, mint_config, mint_release, mint_revocation
from wire.rules import DEFAULT_ISSUER
from wire.vocab import Act

KID_RE = re.compile(r"[A-Za-z0-9._-]{1,16}")
CODE_TTL_SECONDS = 60  # the member's code at the door camera (contract §8)
COMMAND_TTL_SECONDS = 15  # an app button's command: dead soon after the trouble screen (contract §8)
ACTIVE = "active"


class KeyProblem(ValueError):
    """A key that cannot be made or used; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    kid: str
    public_b64: str  # what a door's [credentials.keys] holds
    active: bool


class KeyRing:
    def __init__(self, directory: Path, issuer: str = DEFAULT_ISSUER) -> None:
        self.directory = directory
        self.issuer = issuer

    def new(self, kid: str, *, activate: bool = True) -> PublicKey:
        if not KID_RE.fullmatch(kid):
            raise KeyProblem(f"kid {kid!r} must be 1-16 characters of A-Za-z0-9._-")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        private = self.directory / f"{kid}.key"
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        try:
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyProblem(f"a key {kid!r} exists already: a new kid for a new key") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(raw).decode() + "\n")
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        (self.directory / f"{kid}.pub").write_text(base64.b64encode(public).decode() + "\n")
        if activate:
            self.activate(kid)
        return PublicKey(kid, base64.b64encode(public).decode(), activate)

    def activate(self, kid: str) -> None:
        if not (self.directory / f"{kid}.key").exists():
            raise KeyProblem(f"no key {kid!r} in {self.directory}")
        (self.directory / ACTIVE).write_text(kid + "\n")

    def active_kid(self) -> str:
        marker = self.directory / ACTIVE
        if not marker.exists():
            raise KeyProblem(f"no active key in {self.directory}: officepass keys new KID")
        return marker.read_text().strip()

    def public_keys(self) -> list[PublicKey]:
        active = (self.directory / ACTIVE).read_text().strip() if (self.directory / ACTIVE).exists() else ""
        return [PublicKey(p.stem, p.read_text().strip(), p.stem == active)
                for p in sorted(self.directory.glob("*.pub"))]

    def _private(self, kid: str) -> bytes:
        path = self.directory / f"{kid}.key"
        if path.stat().st_mode & 0o077:
            raise KeyProblem(f"{path} is readable by others: chmod 600 {path}")
        return base64.b64decode(path.read_text().strip(), validate=True)

    def member_code(self, member: str, *, stores: list[str] | None = None, now: int | None = None) -> str:
        """The member's one-time code for the door camera (no act), valid CODE_TTL_SECONDS."""
        iat = int(time.time()) if now is None else now
        kid = self.active_kid()
        return mint_code(self._private(kid), kid=kid, issuer=self.issuer, member=member, iat=iat,
                         exp=iat + CODE_TTL_SECONDS, cti=secrets.token_bytes(16), stores=stores)

    def command(self, member: str, act: Act, store: str, *, presence: str | None = None,
                now: int | None = None) -> str:
        """One app button press as a command for that store's doors (contract §4), carrying the
        presence code the member's phone scanned at the door, if any (claim "pc", §9)."""
        iat = int(time.time()) if now is None else now
        kid = self.active_kid()
        return mint_code(self._private(kid), kid=kid, issuer=self.issuer, member=member, iat=iat,
                         exp=iat + COMMAND_TTL_SECONDS, cti=secrets.token_bytes(16), stores=[store], act=act,
                         presence=presence)

    def config_document(self, version: int, door: str, settings: dict[str, dict[str, Any]], *,
                        now: int | None = None) -> str:
        """A door's remote configuration, signed (contract §11)."""
        kid = self.active_kid()
        iat = int(time.time()) if now is None else now
        return mint_config(self._private(kid), kid=kid, issuer=self.issuer, iat=iat, version=version,
                           door=door, settings=settings)

    def release_manifest(self, version: str, targets: Mapping[str, ReleaseTarget], *,
                         now: int | None = None) -> str:
        """A door release's manifest, signed (contract §11)."""
        kid = self.active_kid()
        iat = int(time.time()) if now is None else now
        return mint_release(self._private(kid), kid=kid, issuer=self.issuer, iat=iat, version=version,
                            targets=targets)

    def revocation(self, version: int, members: list[str], *, now: int | None = None) -> str:
        kid = self.active_kid()
        iat = int(time.time()) if now is None else now
        return mint_revocation(self._private(kid), kid=kid, issuer=self.issuer, iat=iat, version=version,
                               members=members)
