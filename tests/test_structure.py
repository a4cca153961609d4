"""The import structure: drivers never import controller; only the startup choice imports the
simulator; the door's own packages carry no type-check escape without a reason."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_drivers_never_import_controller() -> None:
    arrows = [f"{p.relative_to(ROOT)}:{line} imports {name}"
              for p in _sources("drivers") for line, name in _imports(p)
              if name == "controller" or name.startswith("controller.")]
    assert arrows == []


def test_only_the_startup_choice_imports_the_simulator() -> None:
    allowed = {ROOT / "drivers" / "platform.py"}
    arrows = [f"{p.relative_to(ROOT)}:{line} imports {name}"
              for package in ("controller", "drivers") for p in _sources(package)
              for line, name in _imports(p)
              if (name == "hwsim" or name.startswith("hwsim.")) and p not in allowed]
    assert arrows == []


def test_the_simulator_does_not_import_the_controller() -> None:
    # The demo plays the member's app (it mints codes); the board itself knows only the drivers' types.
    arrows = [f"{p.relative_to(ROOT)}:{line} imports {name}"
              for p in _sources("hw-sim/hwsim") if p.name != "demo.py"
              for line, name in _imports(p) if name == "controller" or name.startswith("controller.")]
    assert arrows == []


def test_every_type_ignore_says_why() -> None:
    bare = [f"{p.relative_to(ROOT)}:{n}" for package in ("controller", "drivers") for p in _sources(package)
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if "type: ignore" in line and not line.split("type: ignore", 1)[1].split("]", 1)[-1].strip()]
    assert bare == []
