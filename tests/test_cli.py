"""The technician's commands: verify-code, keygen, issue-code (run as a user would, in a subprocess)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import zxingcpp

from tests.helpers import PRIVATE, VECTORS, config_doc, toml_text
from tests.procs import doorctl


def _vector_config(tmp_path: Path) -> tuple[Path, dict]:
    vec = json.loads((VECTORS / "codes.json").read_text())
    doc = config_doc(
        door={"store": vec["store"], "name": "main"},
        credentials={"issuer": vec["issuer"], "max_clock_skew_seconds": vec["max_clock_skew_seconds"],
                     "max_code_ttl_seconds": vec["max_code_ttl_seconds"], "keys": vec["keys"]},
    )
    path = tmp_path / "door.toml"
    path.write_text(toml_text(doc))
    return path, vec


def test_verify_code_prints_one_line_per_code(tmp_path: Path) -> None:
    cfg, vec = _vector_config(tmp_path)
    cases = [c for c in vec["cases"] if c["now"] == vec["cases"][0]["now"]]
    res = doorctl("verify-code", "--config", str(cfg), "--at", str(cases[0]["now"]),
                  "--revoked", *vec["revoked"], *[c["code"] for c in cases])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == len(cases)
    for case, line in zip(cases, lines, strict=True):
        if case["verdict"] == "ok":
            expected = f"ok {case['member']}" + (f" {case['act']}" if case.get("act") else "")
        else:
            expected = f"denied {case['verdict']}"
        assert line == expected, case["name"]


def test_verify_code_reads_standard_input(tmp_path: Path) -> None:
    cfg, vec = _vector_config(tmp_path)
    first, expired = vec["cases"][0], next(c for c in vec["cases"] if c["verdict"] == "expired")
    res = doorctl("verify-code", "--config", str(cfg), "--at", str(first["now"]),
                  input=f"{first['code']}\r\n\n{expired['code']}\n")
    assert res.returncode == 0
    assert res.stdout.splitlines() == [f"ok {first['member']}", "denied expired"]


def test_keygen_issue_code_verify_and_qr_png(tmp_path: Path) -> None:
    keyfile = tmp_path / "k.key"
    res = doorctl("keygen", "--kid", "door7", "--out", str(keyfile))
    assert res.returncode == 0
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    config_line = next(line for line in res.stdout.splitlines() if line.startswith("door7 = "))
    public = config_line.split('"')[1]
    assert len(base64.b64decode(public)) == 32
    doc = config_doc(credentials={"keys": {"door7": public}})
    cfg = tmp_path / "door.toml"
    cfg.write_text(toml_text(doc))

    png = tmp_path / "code.png"
    res = doorctl("issue-code", "--key-file", str(keyfile), "--kid", "door7", "--member", "m-77",
                  "--act", "unlock", "--ttl", "60", "--store", "shinjuku-3", "--png", str(png))
    assert res.returncode == 0, res.stderr
    text = res.stdout.strip()
    assert text.startswith("OP1:")
    (barcode,) = zxingcpp.read_barcodes(cv2.imread(str(png)))
    assert barcode.text == text, "the PNG holds the same code, read back by a real decoder"
    res = doorctl("verify-code", "--config", str(cfg), text)
    assert res.stdout.strip() == "ok m-77 unlock"
    other = doorctl("issue-code", "--private-key", base64.b64encode(PRIVATE["k1"]).decode(), "--kid", "door7",
                    "--member", "m-77")
    res = doorctl("verify-code", "--config", str(cfg), other.stdout.strip())
    assert res.stdout.strip() == "denied bad_signature"


def test_issue_code_refuses_a_bad_key(tmp_path: Path) -> None:
    res = doorctl("issue-code", "--private-key", "AAAA", "--kid", "k1", "--member", "m")
    assert res.returncode == 2 and "32 raw bytes" in res.stderr
    res = doorctl("issue-code", "--key-file", str(tmp_path / "missing"), "--kid", "k1", "--member", "m")
    assert res.returncode == 2 and "No such file" in res.stderr


def test_verify_code_with_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[door]\nstore = 1\n")
    res = doorctl("verify-code", "--config", str(cfg), "OP1:X")
    assert res.returncode == 2 and "door.store: must be a string" in res.stderr


def test_issue_revocation_mints_a_list_the_door_accepts(tmp_path: Path) -> None:
    from controller.config import parse_config
    from controller.core import verifier_for

    key = tmp_path / "k1.key"
    key.write_text(base64.b64encode(PRIVATE["k1"]).decode() + "\n")
    res = doorctl("issue-revocation", "--key-file", str(key), "--kid", "k1", "--version", "42", "m-1", "m-2")
    assert res.returncode == 0, res.stderr
    listing = verifier_for(parse_config(config_doc())).verify_revocation(res.stdout.strip(), max_members=10)
    assert (listing.version, listing.members) == (42, frozenset({"m-1", "m-2"}))
    bad = doorctl("issue-revocation", "--key-file", str(key), "--kid", "k1", "--version", "1", "not ok!")
    assert bad.returncode == 2 and "not member ids: not ok!" in bad.stderr
