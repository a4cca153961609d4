"""The daemon's half of an update (controller.updates): what it asks the agent for, when it wants the
switch, and what its status says, from the files the two share."""

from __future__ import annotations

import json
from pathlib import Path

from controller.updates import (
    INSTALL_REQUEST,
    STATE_FILE,
    SWITCH_REQUEST,
    UPDATE_DIR,
    AgentState,
    UpdateWatch,
)
from wire.fleet import UpdateState
from wire.payloads import UpdateReport


def _agent_says(state_dir: Path, state: UpdateState, version: str, reason: str | None = None) -> None:
    path = state_dir / UPDATE_DIR / STATE_FILE
    path.write_text(AgentState(state, version, reason).to_json())
    # A new mtime each time, as the agent's rename gives (the watch rereads on a changed mtime).
    stamp = path.stat().st_mtime + len(state) + len(reason or "")
    import os
    os.utime(path, (stamp, stamp))


def test_asks_installs_then_wants_the_switch_then_reports_the_rollback(tmp_path: Path) -> None:
    watch = UpdateWatch(tmp_path, "0.2.0", running="0.1.0")
    assert watch.report() is None or watch.report() == UpdateReport(UpdateState.DOWNLOADING, "0.2.0",
                                                                    "asked the update agent")
    watch.tick()
    assert json.loads((tmp_path / UPDATE_DIR / INSTALL_REQUEST).read_text()) == {"version": "0.2.0"}
    assert watch.report() == UpdateReport(UpdateState.DOWNLOADING, "0.2.0", "asked the update agent")
    assert not watch.switch_wanted

    _agent_says(tmp_path, UpdateState.WAITING_QUIET, "0.2.0", "installed beside the running version")
    (tmp_path / UPDATE_DIR / INSTALL_REQUEST).unlink()
    watch.tick()
    assert watch.switch_wanted
    assert watch.report() == UpdateReport(UpdateState.WAITING_QUIET, "0.2.0", "waiting for a quiet moment")
    assert watch.switch()
    assert json.loads((tmp_path / UPDATE_DIR / SWITCH_REQUEST).read_text()) == {"version": "0.2.0"}
    watch.tick()
    assert not watch.switch_wanted  # asked once: the agent has it

    (tmp_path / UPDATE_DIR / SWITCH_REQUEST).unlink()
    _agent_says(tmp_path, UpdateState.ROLLED_BACK, "0.2.0", "not healthy within 120 s: it crashed")
    watch.tick()
    assert not watch.switch_wanted and not (tmp_path / UPDATE_DIR / INSTALL_REQUEST).exists()
    assert watch.report() == UpdateReport(UpdateState.ROLLED_BACK, "0.2.0",
                                          "not healthy within 120 s: it crashed")

    # Another release named (a live configuration, the same daemon): asked for.
    watch.release = "0.2.1"
    watch.tick()
    assert json.loads((tmp_path / UPDATE_DIR / INSTALL_REQUEST).read_text()) == {"version": "0.2.1"}


def test_the_running_release_reports_what_the_agent_said(tmp_path: Path) -> None:
    (tmp_path / UPDATE_DIR).mkdir()
    _agent_says(tmp_path, UpdateState.APPLIED, "0.2.0")
    watch = UpdateWatch(tmp_path, "0.2.0", running="0.2.0")
    watch.tick()
    assert not (tmp_path / UPDATE_DIR / INSTALL_REQUEST).exists()
    assert watch.report() == UpdateReport(UpdateState.APPLIED, "0.2.0", None)


def test_a_state_directory_that_takes_no_request_is_said(tmp_path: Path) -> None:
    (tmp_path / UPDATE_DIR).write_text("a file where the directory should be")
    watch = UpdateWatch(tmp_path, "0.2.0", running="0.1.0")
    watch.tick()
    report = watch.report()
    assert report is not None and report.state is UpdateState.FAILED and "cannot write" in str(report.reason)
