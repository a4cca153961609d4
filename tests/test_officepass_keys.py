"""The service's keys and what it mints: checked by the door's own verifier, as a door would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller.config import parse_config
from controller.core import verifier_for
from officepass.keys import KeyProblem, KeyRing
from tests.helpers import NOW, config_doc
from tests.procs import ROOT
from wire.codes import CodeVerifier
from wire.vocab import Act


def door_trusting(ring: KeyRing, store: str = "shinjuku-3") -> CodeVerifier:
    keys = {k.kid: k.public_b64 for k in ring.public_keys()}
    return verifier_for(parse_config(config_doc(door={"store": store, "name": "main"},
                                                credentials={"keys": keys})))


def test_keys_are_private_files_and_rotate(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    first = ring.new("k1")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "k1.key").stat().st_mode) == 0o600
    ring.new("k2", activate=False)
    assert [(k.kid, k.active) for k in ring.public_keys()] == [("k1", True), ("k2", False)]
    with pytest.raises(KeyProblem, match="exists already"):
        ring.new("k1")
    with pytest.raises(KeyProblem, match="1-16 characters"):
        ring.new("a kid with spaces")
    ring.activate("k2")
    assert ring.active_kid() == "k2" and first.public_b64 != ring.public_keys()[1].public_b64


def test_member_codes_and_commands_verify_at_the_door(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.new("k1")
    verifier = door_trusting(ring)
    code = ring.member_code("m-1", now=NOW)
    verdict = verifier.verify(code, NOW + 30)
    assert verdict.ok and verdict.code is not None
    assert verdict.code.act is None and verdict.code.exp - verdict.code.iat == 60
    command = ring.command("m-1", Act.CHECK_IN, "shinjuku-3", now=NOW)
    verdict = verifier.verify(command, NOW + 2, command=True)
    assert verdict.ok and verdict.code is not None
    assert verdict.code.act is Act.CHECK_IN and verdict.code.stores == ("shinjuku-3",)
    elsewhere = door_trusting(ring, store="ginza-1").verify(command, NOW + 2, command=True)
    assert elsewhere.reason == "wrong_store"
    listing = verifier.verify_revocation(ring.revocation(5, ["m-9"], now=NOW), 100)
    assert listing.version == 5 and listing.members == {"m-9"}


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.new("k1")
    os.chmod(tmp_path / "keys" / "k1.key", 0o644)
    with pytest.raises(KeyProblem, match="readable by others"):
        ring.member_code("m-1")


def test_keys_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = [sys.executable, "-m", "officepass.cli"]
    made = subprocess.run([*run, "keys", "new", "k7", "--keys", str(tmp_path / "k")], capture_output=True,
                          text=True, cwd=ROOT)
    assert made.returncode == 0 and 'k7 = "' in made.stdout and "0600" in made.stdout
    listed = subprocess.run([*run, "keys", "list", "--keys", str(tmp_path / "k")], capture_output=True,
                            text=True)
    assert "k7 = " in listed.stdout and "# active" in listed.stdout
    again = subprocess.run([*run, "keys", "new", "k7", "--keys", str(tmp_path / "k")], capture_output=True,
                           text=True)
    assert again.returncode == 2 and "exists already" in again.stderr
