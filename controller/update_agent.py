"""`doorctl update-agent` (contract §11): the root half of a safe update (the daemon's half and the
files they share: controller.updates).

Run by `doorctl-update.service` (a oneshot, as root, from the base venv install-pi.sh made, which no
update replaces) whenever `doorctl-update.path` sees a request:

* `install.request`: fetch the release's manifest from `[update] service`, check its signature with the
  door's trusted keys, fetch every file of this door's target (a file already in the cache with the
  right SHA-256 is not fetched again), check each file's size and SHA-256, make a venv for it in
  `/opt/doorctl/releases/{version}` and install the hashed lock and the door's wheels from those files
  alone (`--no-index`: no network after the download), check that the new version takes this door's
  configuration, then say `waiting_quiet`;
* `switch.request` (the daemon found a quiet moment): wait for the relay to be off, point
  `/opt/doorctl/current` at the new venv, restart `doorctl.service`, and watch it for
  `HEALTH_SECONDS`: the unit running (it sent READY), the new version answering on its status socket
  with its journal readable and, with an `[mqtt]` section, connected to the broker, steadily. Healthy:
  `applied`. Not: `current` back to the version before, the unit restarted on it, `rolled_back` with
  the version that failed and why. A switch interrupted (a power cut) is watched again from the start
  when the agent runs next.

Every step writes `state.json`, which the daemon reports as its status's `update`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from controller.config import Config, ConfigError
from controller.core import verifier_for
from controller.files import write_atomic
from controller.net import loopback
from controller.remote_config import load_effective
from controller.status_socket import query, status_socket_path
from controller.updates import (
    BASE_VENV,
    CURRENT,
    INSTALL_REQUEST,
    OPT,
    RELEASES,
    STATE_FILE,
    SWITCH_REQUEST,
    TRIAL_FILE,
    UPDATE_DIR,
    AgentState,
)
from wire.codes import MalformedCode, ReleaseFile, ReleaseManifest
from wire.fleet import HEALTH_SECONDS, UpdateState, release_file_path, release_manifest_path

log = logging.getLogger("doorctl.update-agent")

UNIT = "doorctl.service"
CACHE = Path("/var/cache/doorctl-update")
COMPLETE = ".complete"  # written last into a release's venv: the install finished
FETCH_SECONDS = 60
PIP_SECONDS = 1800
STEADY_SECONDS = 5.0  # healthy twice this far apart, same process: not a crash loop between looks
RELAY_OFF_SECONDS = 30.0


class UpdateFailed(Exception):
    pass


@dataclass(frozen=True)
class Places:
    """Where things are: on a door, /opt/doorctl and /var/lib/doorctl; elsewhere for a test."""

    opt: Path
    state_dir: Path
    cache: Path

    @property
    def update_dir(self) -> Path:
        return self.state_dir / UPDATE_DIR

    @property
    def current(self) -> Path:
        return self.opt / CURRENT

    def release(self, version: str) -> Path:
        return self.opt / RELEASES / version


def door_target() -> str:
    """`bookworm-aarch64`: this system's release codename and machine, as the locks are named."""
    codename = "bookworm"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"') or codename
    except OSError:
        pass
    return f"{codename}-{platform.machine()}"


class Agent:
    def __init__(self, config_path: str, places: Places, systemctl: str = "systemctl") -> None:
        self.config_path = config_path
        self.places = places
        self.systemctl = systemctl
        self.config: Config = load_effective(config_path).config

    # --- state -------------------------------------------------------------------------------

    def say(self, state: UpdateState, version: str | None, reason: str | None = None,
            previous: str | None = None) -> None:
        log.info("update %s %s%s", state, version, f": {reason}" if reason else "")
        self.places.update_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        write_atomic(self.places.update_dir / STATE_FILE,
                     AgentState(state, version, reason, previous).to_json() + "\n")

    def run(self) -> int:
        """Every request there is, switches first; each one removed once decided."""
        directory = self.places.update_dir
        for name in (SWITCH_REQUEST, INSTALL_REQUEST):
            path = directory / name
            if not path.exists():
                continue
            try:
                version = str(json.loads(path.read_text())["version"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("%s unreadable, removed: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            try:
                if name == SWITCH_REQUEST:
                    self.switch(version)
                else:
                    self.install(version)
            except UpdateFailed as exc:
                self.say(UpdateState.FAILED, version, str(exc))
            except Exception as exc:  # whatever went wrong, the daemon must not wait on it forever
                log.exception("update %s failed unexpectedly", version)
                self.say(UpdateState.FAILED, version, f"{type(exc).__name__}: {exc}")
            finally:
                path.unlink(missing_ok=True)
        return 0

    # --- install -----------------------------------------------------------------------------

    def _fetch(self, url: str, limit: int) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback(parts.hostname or "")):
            raise UpdateFailed(f"{url}: releases come over https (plain http only from this machine)")
        context = ssl.create_default_context() if parts.scheme == "https" else None
        try:
            with urllib.request.urlopen(url, timeout=FETCH_SECONDS, context=context) as answer:
                data: bytes = answer.read(limit + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise UpdateFailed(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from None
        if len(data) > limit:
            raise UpdateFailed(f"{url} is over {limit} bytes")
        return data

    def manifest(self, version: str) -> ReleaseManifest:
        service = self.config.update.service
        if service is None:
            raise UpdateFailed("no [update] service in the config: where releases come from (doorctl enroll "
                               "writes it)")
        text = self._fetch(service + release_manifest_path(version), 256 * 1024).decode("utf-8", "replace")
        try:
            manifest = verifier_for(self.config).verify_release(text.strip())
        except MalformedCode as exc:
            raise UpdateFailed(f"release {version}'s manifest refused: {exc}") from None
        if manifest.version != version:
            raise UpdateFailed(f"the manifest is for {manifest.version}, not {version}")
        return manifest

    def _cached(self, version: str, entry: ReleaseFile) -> Path:
        cache = self.places.cache
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = cache / entry.name
        if path.exists() and path.stat().st_size == entry.size and _sha256(path) == entry.sha256:
            return path
        assert self.config.update.service is not None
        data = self._fetch(self.config.update.service + release_file_path(version, entry.name), entry.size)
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise UpdateFailed(f"{entry.name}: not the file the manifest signed (size or SHA-256)")
        part = path.with_name(path.name + ".part")
        part.write_bytes(data)
        os.replace(part, path)
        return path

    def install(self, version: str) -> Path:
        """The release downloaded, checked and installed beside the running one; its venv."""
        self.say(UpdateState.DOWNLOADING, version, "fetching and checking the release")
        manifest = self.manifest(version)
        target = door_target()
        if target not in manifest.targets:
            raise UpdateFailed(f"release {version} has no build for {target} "
                               f"(it has {', '.join(sorted(manifest.targets))})")
        plan = manifest.targets[target]
        files = {entry.name: self._cached(version, entry) for entry in plan.files}
        venv = self.places.release(version)
        if not (venv / COMPLETE).exists():
            shutil.rmtree(venv, ignore_errors=True)
            venv.parent.mkdir(parents=True, exist_ok=True)
            python = shutil.which("python3") or sys.executable
            # The system's site packages, as install-pi.sh's venv: apt's lgpio and picamera2.
            _run([python, "-m", "venv", "--system-site-packages", str(venv)], "making the venv")
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                   "--find-links", str(self.places.cache)]
            _run([*pip, "--require-hashes", "-r", str(files[plan.lock])], "installing the locked wheels")
            own = [str(p) for name, p in files.items() if name.startswith(("doorctl-", "doorctl_wire-"))]
            _run([*pip, "--no-deps", *own], "installing the door's wheels")
            (venv / COMPLETE).write_text(version + "\n")
        # The new version must take this door's configuration before it is let near the door.
        check = subprocess.run([str(venv / "bin" / "doorctl"), "check-config", "--config", self.config_path],
                               capture_output=True, text=True, timeout=120, check=False)
        if check.returncode != 0:
            raise UpdateFailed(f"release {version} refuses this door's configuration: "
                               f"{(check.stdout + check.stderr).strip()[-300:]}")
        self.say(UpdateState.WAITING_QUIET, version, "installed beside the running version")
        return venv

    # --- switch ------------------------------------------------------------------------------

    def _unit(self) -> dict[str, str]:
        try:
            done = subprocess.run([self.systemctl, "show", UNIT, "-p",
                                   "ActiveState,SubState,MainPID,NRestarts,Result"],
                                  capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return {}  # not known: not healthy
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def _restart(self) -> None:
        # --no-block: a start that never sends READY must not hold the health window up.
        subprocess.run([self.systemctl, "restart", "--no-block", UNIT], capture_output=True, timeout=60,
                       check=False)

    def _status(self) -> dict[str, object] | None:
        try:
            return query(status_socket_path(self.config.storage.path), timeout=3.0)
        except (OSError, ValueError):
            return None

    def _relay_off(self) -> None:
        """A member's unlock pulse ends before the switch (the daemon asked at a quiet moment; a code
        may have come since)."""
        end = time.monotonic() + RELAY_OFF_SECONDS
        while time.monotonic() < end:
            status = self._status()
            if status is None or status.get("lock") != "unlocked":
                return
            time.sleep(0.2)

    def health_problem(self, version: str) -> str | None:
        """Why the running unit is not the healthy `version` now, or None."""
        unit = self._unit()
        if unit.get("ActiveState") != "active" or unit.get("SubState") != "running":
            return (f"{UNIT} is {unit.get('ActiveState')}/{unit.get('SubState')} "
                    f"(result {unit.get('Result')}, {unit.get('NRestarts')} restarts)")
        status = self._status()
        if status is None:
            return "the daemon does not answer on its status socket"
        if status.get("version") != version:
            return f"the daemon runs version {status.get('version')}, not {version}"
        if status.get("journal_unreadable"):
            return f"its journal cannot be read: {status['journal_unreadable']}"
        if self.config.mqtt is not None and status.get("cloud") != "connected":
            return f"not connected to the broker ({status.get('cloud')})"
        return None

    def _healthy_within(self, version: str, deadline: float) -> str | None:
        """None once `version` is healthy twice, STEADY_SECONDS apart, in the same process; else the
        last problem seen when the deadline passed."""
        problem = "not checked yet"
        while time.monotonic() < deadline:
            problem = self.health_problem(version) or ""
            if not problem:
                pid = self._unit().get("MainPID")
                time.sleep(STEADY_SECONDS)
                problem = self.health_problem(version) or ""
                if not problem and self._unit().get("MainPID") == pid:
                    return None
                problem = problem or "the daemon restarted meanwhile"
            time.sleep(1.0)
        return problem

    def switch(self, version: str) -> None:
        places = self.places
        venv = places.release(version)
        if not (venv / COMPLETE).exists():
            raise UpdateFailed(f"release {version} is not installed: nothing to switch to")
        trial = places.update_dir / TRIAL_FILE
        previous: str
        if trial.exists():  # a switch the agent did not see through (a power cut): watch it again
            previous = json.loads(trial.read_text())["previous"]
            log.info("release %s: an unfinished switch, watched again", version)
        else:
            previous = (os.readlink(places.current) if places.current.is_symlink()
                        else str(places.opt / BASE_VENV))
            write_atomic(trial, json.dumps({"version": version, "previous": previous}) + "\n")
            self.say(UpdateState.SWITCHING, version, None, previous)
            self._relay_off()
            _point(places.current, venv)
        deadline = time.monotonic() + HEALTH_SECONDS
        try:
            self._restart()
            problem = self._healthy_within(version, deadline)
        except Exception as exc:  # a watch that broke is no proof of health: back
            log.exception("release %s: the health watch failed", version)
            problem = f"the health watch failed: {type(exc).__name__}: {exc}"
        if problem is None:
            trial.unlink(missing_ok=True)
            self.say(UpdateState.APPLIED, version, None, previous)
            self._tidy(keep={venv, Path(previous)})
            return
        log.error("release %s not healthy within %d s (%s): switching back to %s", version, HEALTH_SECONDS,
                  problem, previous)
        _point(places.current, Path(previous))
        self._restart()
        trial.unlink(missing_ok=True)
        self.say(UpdateState.ROLLED_BACK, version, f"not healthy within {HEALTH_SECONDS} s: {problem}",
                 previous)

    def _tidy(self, keep: set[Path]) -> None:
        """Releases other than the running one and the one before: removed."""
        releases = self.places.opt / RELEASES
        for path in releases.iterdir() if releases.is_dir() else ():
            if path.resolve() not in {k.resolve() for k in keep}:
                shutil.rmtree(path, ignore_errors=True)


def _point(link: Path, target: Path) -> None:
    """`link` -> `target`, replaced in one rename (never missing for an instant)."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=PIP_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateFailed(f"{what}: {exc}") from None
    if done.returncode != 0:
        raise UpdateFailed(f"{what} failed: {(done.stderr or done.stdout).strip()[-400:]}")


def main(config_path: str) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        agent = Agent(config_path, Places(OPT, load_effective(config_path).config.storage.state_dir, CACHE))
    except ConfigError as exc:
        log.error("config %s: %s", config_path, "; ".join(exc.problems))
        return 2
    return agent.run()
