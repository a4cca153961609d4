"""Every case and sequence in tests/data/vectors (and any other vector file built the same way)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.clock import DoorClock
from controller.config import Config
from controller.core import DoorCore, verifier_for
from controller.journal import Journal
from tests.helpers import VECTORS, make_config
from tests.rig import Relay
from wire.vocab import Side


def _vector_files() -> list[Path]:
    return sorted(p for p in VECTORS.glob("*.json") if "cases" in json.loads(p.read_text()))


def _config(vec: dict[str, Any], tmp_path: Path, **more: Any) -> Config:
    """A door configured as the vector file says (store, issuer, skew, ttl, keys)."""
    return make_config(
        tmp_path,
        door={"store": vec["store"], "name": "main", "seats": 100},
        credentials={
            "issuer": vec["issuer"],
            "max_clock_skew_seconds": vec["max_clock_skew_seconds"],
            "max_code_ttl_seconds": vec["max_code_ttl_seconds"],
            "keys": vec["keys"],
        },
        **more,
    )


CASES = [
    pytest.param(path, case, id=f"{path.stem}:{case['name']}")
    for path in _vector_files()
    for case in json.loads(path.read_text())["cases"]
]
SEQUENCES = [
    pytest.param(path, seq, id=f"{path.stem}:{seq['name']}")
    for path in _vector_files()
    for seq in json.loads(path.read_text()).get("sequences", [])
]


def test_vectors_are_there() -> None:
    assert len(CASES) >= 40, f"expected the code vectors under {VECTORS}"
    assert SEQUENCES


@pytest.mark.parametrize(("path", "case"), CASES)
def test_case(path: Path, case: dict[str, Any], tmp_path: Path) -> None:
    vec = json.loads(path.read_text())
    verifier = verifier_for(_config(vec, tmp_path))
    verdict = verifier.verify(case["code"], case["now"], revoked=frozenset(vec.get("revoked", [])))
    got = "ok" if verdict.ok else verdict.reason
    assert got == case["verdict"], verdict.detail
    if verdict.ok:
        assert verdict.code is not None
        assert verdict.code.member == case["member"]
        assert verdict.code.act == case.get("act")


class _FakeWall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("path", "seq"), SEQUENCES)
def test_sequence_through_the_door(path: Path, seq: dict[str, Any], tmp_path: Path) -> None:
    """Run the sequence through DoorCore with a real journal: ok, ignored (no event) or the deny."""
    vec = json.loads(path.read_text())
    config = _config(
        vec,
        tmp_path,
        reader=[
            {"name": "front", "type": "camera", "side": "entry", "source": 0},
            {"name": "inside", "type": "serial", "side": "exit", "port": "/dev/null"},
        ],
    )
    sides = {r.name: Side(r.side) for r in config.readers}
    wall = _FakeWall(seq["steps"][0]["now"])
    mono = _FakeWall(0.0)
    journal = Journal(config.storage.path)
    clock = DoorClock(0, wall=wall, monotonic=mono, synced_probe=lambda: True)
    relay = Relay(config)
    core = DoorCore(config, journal, relay.guard, clock, monotonic=mono)
    core.set_revoked(1, frozenset(vec.get("revoked", [])))
    for step in seq["steps"]:
        wall.t = step["now"]
        mono.t = step["now"] - seq["steps"][0]["now"]
        before = journal.last_seq()
        handled = core.present(step["code"], step["reader"], sides[step["reader"]])
        if step["expect"] == "ignored":
            assert handled.ignored
            assert journal.last_seq() == before, "an ignored presentation journals nothing"
        elif step["expect"] == "ok":
            assert handled.decision is not None and handled.decision.ok
        else:
            assert handled.decision is not None and not handled.decision.ok
            assert handled.decision.reason == step["expect"]
            assert [e.type for e in handled.events] == ["denied"]
            assert handled.events[0].reason == step["expect"]
    relay.close()
