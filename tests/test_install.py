"""The Pi install script, run into a temporary root (twice: it must be idempotent)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_install_into_a_temporary_root(tmp_path: Path) -> None:
    env = {**os.environ, "ROOT": str(tmp_path / "pi")}
    for _ in range(2):
        res = subprocess.run(["bash", str(ROOT / "scripts" / "install-pi.sh")], env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
    pi = tmp_path / "pi"
    doorctl = pi / "opt/doorctl/.venv/bin/doorctl"
    assert doorctl.exists()
    assert (pi / "etc/systemd/system/doorctl.service").read_text().count("ExecStopPost=") == 1
    assert "RuntimeWatchdogSec=15" in (pi / "etc/systemd/system.conf.d/doorctl-watchdog.conf").read_text()
    assert (pi / "var/lib/doorctl").is_dir()
    assert "include-system-site-packages = true" in (pi / "opt/doorctl/.venv/pyvenv.cfg").read_text()
    config = pi / "etc/doorctl/doorctl.toml"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    res = subprocess.run([str(doorctl), "check-config", "--config", str(config)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    # The door only: the simulator is not installed on a Pi, and --sim says so instead of crashing.
    python = pi / "opt/doorctl/.venv/bin/python"
    probe = subprocess.run([str(python), "-c", "import hwsim"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'hwsim'" in probe.stderr
    # Nothing of the pass service on a door: not installed, not even copied.
    assert not (pi / "opt/doorctl/officepass").exists()
    service = subprocess.run([str(python), "-c", "import officepass"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert service.returncode != 0
    sim = subprocess.run([str(doorctl), "relay-off", "--sim", "--config", str(config)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert sim.returncode == 1 and "the hardware simulator is not installed" in sim.stderr
