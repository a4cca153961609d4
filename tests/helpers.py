"""Helpers shared by the tests: the test data under tests/data, test keys, code minting, config building."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from controller.config import Config, parse_config
from wire.codes import mint_code, mint_revocation

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"  # the project's own copies: a clone needs nothing beside it
VECTORS = DATA / "vectors"
PHOTOS = DATA / "qr-photos"
# Stand-ins for the parts CI cannot have (see each one's docstring); put on a child's PYTHONPATH.
STAND_INS = ROOT / "tests" / "stand_ins"

_TEST_KEYS = json.loads((VECTORS / "test-keys.json").read_text())["keys"]
PRIVATE = {kid: base64.b64decode(k["private"]) for kid, k in _TEST_KEYS.items()}
PUBLIC_B64 = {kid: k["public"] for kid, k in _TEST_KEYS.items()}

NOW = 1_800_000_000


def code(
    member: str = "m-1",
    *,
    iat: int = NOW,
    ttl: int = 120,
    act: str | None = None,
    kid: str = "k1",
    stores: list[str] | None = None,
    issuer: str = "officepass",
    cti: bytes | None = None,
) -> str:
    return mint_code(
        PRIVATE[kid],
        kid=kid,
        issuer=issuer,
        member=member,
        iat=iat,
        exp=iat + ttl,
        cti=cti or secrets.token_bytes(16),
        stores=stores,
        act=act,
    )


def revocation(version: int, members: list[str], *, kid: str = "k1", issuer: str = "officepass",
               iat: int = NOW) -> str:
    """A signed revocation list (contract §4), as the pass service publishes it."""
    return mint_revocation(PRIVATE[kid], kid=kid, issuer=issuer, iat=iat, version=version, members=members)


def config_doc(**overrides: Any) -> dict[str, Any]:
    """A minimal valid config as parsed TOML; overrides replace whole sections."""
    doc: dict[str, Any] = {
        "door": {"store": "shinjuku-3", "name": "main"},
        "lock": {"relay_pin": "GPIO17"},
        "credentials": {"keys": dict(PUBLIC_B64)},
        "storage": {"path": "doorctl.db"},
    }
    doc.update(overrides)
    return doc


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    doc = config_doc(**overrides)
    doc.setdefault("storage", {})
    doc["storage"] = {"path": str(tmp_path / "doorctl.db"), **{k: v for k, v in doc["storage"].items()
                                                              if k != "path"}}
    return parse_config(doc)


def toml_text(doc: dict[str, Any]) -> str:
    """Serialise the small config dicts the tests use (no TOML writer in the standard library)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def table(name: str, body: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        subs = {k: v for k, v in body.items() if isinstance(v, dict)}
        for k, v in body.items():
            if not isinstance(v, dict):
                lines.append(f"{k} = {value(v)}")
        for k, v in subs.items():
            table(f"{name}.{k}", v)

    for name, body in doc.items():
        if name == "reader":
            for r in body:
                lines.append("[[reader]]")
                lines.extend(f"{k} = {value(v)}" for k, v in r.items())
        else:
            table(name, body)
    return "\n".join(lines) + "\n"
