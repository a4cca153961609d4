"""Safe updates (contract §11), the daemon's half: when to ask for a release, and when to switch.

Two processes share the work, so that the door's own process never writes code it runs:

* the daemon (unprivileged, sandboxed) knows what the operator asked for (`update.release`, a remote
  configuration) and when the door is quiet. It asks by dropping a request file into
  `/var/lib/doorctl/update/` (`install.request`, later `switch.request`) and reports what the agent
  says in `state.json`, as the `update` of its status;
* the agent (`doorctl update-agent`, root, started by `doorctl-update.path` when a request appears;
  controller.update_agent) downloads, verifies, installs beside the running version, switches,
  watches the new version's health for 120 s and switches back by itself when it is not healthy.

A release that failed or was rolled back is not asked for again until the operator names another.
Everything here runs on the reactor thread.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from controller import __version__
from controller.files import write_atomic
from wire.fleet import UpdateState
from wire.payloads import UpdateReport

log = logging.getLogger("doorctl.update")

UPDATE_DIR = "update"  # in the state directory (the daemon's StateDirectory, /var/lib/doorctl)
INSTALL_REQUEST, SWITCH_REQUEST, STATE_FILE = "install.request", "switch.request", "state.json"
TRIAL_FILE = "trial.json"  # the agent's: a switch whose health is not decided yet
# Where releases live on a door (root's; the daemon only reads): the install-pi.sh venv is the base,
# and `current` points at the venv the unit runs.
OPT = Path("/opt/doorctl")
BASE_VENV, RELEASES, CURRENT = ".venv", "releases", "current"
AGENT_SILENT_SECONDS = 120.0  # a request nobody took this long: no agent (doorctl-update.path)


@dataclass(frozen=True)
class AgentState:
    state: UpdateState
    version: str | None
    reason: str | None = None
    previous: str | None = None

    def to_json(self) -> str:
        return json.dumps({"state": self.state, "version": self.version, "reason": self.reason,
                           "previous": self.previous})

    @classmethod
    def read(cls, path: Path) -> AgentState | None:
        try:
            body = json.loads(path.read_text())
            return cls(UpdateState(body["state"]), body.get("version"), body.get("reason"),
                       body.get("previous"))
        except (OSError, ValueError, KeyError, TypeError):
            return None


class UpdateWatch:
    """The release asked for, against the one running and what the agent last said."""

    def __init__(self, state_dir: Path, release: str | None, running: str = __version__) -> None:
        self.dir = state_dir / UPDATE_DIR
        self.release = release  # update.release (a remote configuration may change it live)
        self.running = running
        self._asked: tuple[str, float] | None = None  # the release asked for, and when (monotonic)
        self._agent: AgentState | None = None
        self._mtime = -1.0
        self.switch_wanted = False
        self.problem: str | None = None  # a request we could not write, or an agent that never came

    def _read_agent(self) -> AgentState | None:
        path = self.dir / STATE_FILE
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if mtime != self._mtime:
            self._mtime, self._agent = mtime, AgentState.read(path)
        return self._agent

    def report(self) -> UpdateReport | None:
        agent = self._read_agent()
        if self.problem is not None:
            return UpdateReport(UpdateState.FAILED, self.release, self.problem)
        if agent is not None and agent.version in (self.release, self.running):
            if self.switch_wanted and agent.state is UpdateState.WAITING_QUIET:
                return UpdateReport(UpdateState.WAITING_QUIET, agent.version, "waiting for a quiet moment")
            return UpdateReport(agent.state, agent.version, agent.reason)
        if self.release is not None and self.release != self.running:
            return UpdateReport(UpdateState.DOWNLOADING, self.release, "asked the update agent")
        return None

    def tick(self) -> None:
        """Ask the agent for the release when it is wanted and not yet had; note a staged one."""
        self.switch_wanted = False
        wanted = self.release
        if wanted is None or wanted == self.running:
            self._asked = None
            self.problem = None
            return
        agent = self._read_agent()
        if agent is not None and agent.version == wanted:
            if agent.state in (UpdateState.FAILED, UpdateState.ROLLED_BACK):
                return  # said and shown; the operator names another release to try again
            if agent.state is UpdateState.WAITING_QUIET:
                self.switch_wanted = not (self.dir / SWITCH_REQUEST).exists()
                return
            if agent.state in (UpdateState.DOWNLOADING, UpdateState.SWITCHING):
                return  # the agent is at it
        now = time.monotonic()
        if self._asked is None or self._asked[0] != wanted:
            if not self._request(INSTALL_REQUEST, wanted):
                return
            self._asked = (wanted, now)
            log.info("release %s asked for (running %s): the update agent downloads and installs it",
                     wanted, self.running)
        elif now - self._asked[1] > AGENT_SILENT_SECONDS and (self.dir / INSTALL_REQUEST).exists():
            self.problem = (f"no update agent took the request in {AGENT_SILENT_SECONDS:.0f} s "
                            "(is doorctl-update.path enabled?)")

    def switch(self) -> bool:
        """The door is quiet: ask the agent to switch (it restarts this daemon). False if not written."""
        assert self.release is not None
        written = self._request(SWITCH_REQUEST, self.release)
        if written:
            log.info("release %s: the door is quiet, the agent switches to it", self.release)
        self.switch_wanted = False
        return written

    def _request(self, name: str, version: str) -> bool:
        try:
            self.dir.mkdir(mode=0o750, exist_ok=True)
            write_atomic(self.dir / name, json.dumps({"version": version}) + "\n", 0o640)
        except OSError as exc:
            self.problem = f"cannot write {self.dir / name}: {exc}"
            log.error("update: %s", self.problem)
            return False
        self.problem = None
        return True
