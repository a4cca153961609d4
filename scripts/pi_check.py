#!/usr/bin/env python3
"""`make pi-check`: the technician's bench in one command.

Builds (once, cached outside git) a Debian bookworm root file system with mmdebstrap for the
host's architecture or, with `--arch arm64`, a Pi's (under qemu-user); boots it with systemd in
systemd-nspawn; runs scripts/install-pi.sh from this checkout inside; starts doorctl.service on a
simulated board (a drop-in written here, never shipped) and checks what a technician relies on,
through systemctl, journalctl and `doorctl status`. Prints a table: check, ok/fail, seconds.

Needs root (mmdebstrap, nspawn, nsenter). Installs what it needs with apt when missing.
Exit 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("DOORCTL_PI_CHECK_CACHE", "/var/cache/doorctl-pi-check"))
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "libzbar0", "ca-certificates",
            "iproute2", "procps", "util-linux"]
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
MACHINE = "doorctl-check"
SIM_DROP_IN = """[Service]
# Written by make pi-check, never shipped: the door on the simulated board.
Environment=PYTHONPATH=/opt/doorctl/hw-sim
ExecStart=
ExecStart=/opt/doorctl/current/bin/doorctl run --sim --config /etc/doorctl/doorctl.toml
ExecStopPost=
ExecStopPost=/opt/doorctl/.venv/bin/doorctl relay-off --sim --config /etc/doorctl/doorctl.toml
"""
SIM_UNIT = """[Unit]
Description=simulated door board (make pi-check only)
Before=doorctl.service

[Service]
User=doorctl
Group=doorctl
StateDirectory=doorctl
Environment=PYTHONPATH=/opt/doorctl/hw-sim
ExecStart=/opt/doorctl/.venv/bin/doorctl sim --config /etc/doorctl/doorctl.toml

[Install]
WantedBy=multi-user.target
"""
BOARD = "/var/lib/doorctl/sim.sock"


def sh(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kw)  # type: ignore



def ensure_tools(arch: str) -> None:
    needed = {"mmdebstrap": "mmdebstrap", "systemd-nspawn": "systemd-container", "nsenter": "util-linux"}
    if arch != HOST_ARCH:
        needed["qemu-aarch64-static"] = "qemu-user-static"
        needed["update-binfmts"] = "binfmt-support"
    missing = sorted({pkg for tool, pkg in needed.items() if shutil.which(tool) is None})
    if missing:
        print(f"pi-check: installing {' '.join(missing)}", flush=True)
        sh("apt-get", "update", "-qq")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("apt-get", "install", "-y", "-qq", *missing, env=env)
    if arch != HOST_ARCH:
        binfmt = Path("/proc/sys/fs/binfmt_misc")
        if not (binfmt / "register").exists():
            sh("mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt))
        if not (binfmt / "qemu-aarch64").exists():
            sh("update-binfmts", "--enable", "qemu-aarch64", check=False)


def rootfs(arch: str) -> Path:
    """The cached root file system tarball, built on first use."""
    tar = CACHE / f"bookworm-{arch}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    hooks: list[str] = []
    local_cas = Path("/usr/local/share/ca-certificates")
    if any(local_cas.glob("*.crt")):
        # Behind an inspecting proxy, apt and pip inside need the host's locally added CAs.
        hooks += [f"--customize-hook=copy-in {' '.join(str(p) for p in local_cas.glob('*.crt'))} "
                  "/usr/local/share/ca-certificates/",
                  '--customize-hook=chroot "$1" update-ca-certificates']
    partial = tar.with_name(f"{tar.stem}.partial.tar")  # mmdebstrap picks the format from the name
    sh("mmdebstrap", "--variant=minbase", f"--architectures={arch}", f"--include={','.join(PACKAGES)}",
       *hooks, "bookworm", str(partial), "http://deb.debian.org/debian")
    partial.rename(tar)
    return tar


class Container:
    """A booted nspawn container and a way to run commands in it (nsenter into its init)."""

    def __init__(self, tar: Path, workdir: Path) -> None:
        self.root = workdir / "root"
        self.root.mkdir()
        sh("tar", "-C", str(self.root), "-xf", str(tar))
        self.log = (workdir / "boot.log").open("w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
             f"--machine={MACHINE}", f"--bind-ro={ROOT}:/src", "--resolv-conf=copy-host", "--console=pipe",
             # nspawn's own seccomp layer denies the clock calls (adjtimex too, even read only) to a
             # container without CAP_SYS_TIME; a Pi has no such layer. With it the check below is about
             # the unit's own sandbox, which drops the capability itself.
             "--capability=CAP_SYS_TIME"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.init_pid = self._find_init()

    def _find_init(self, timeout: float = 60) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError("the container did not boot: see boot.log")

    def run(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", "--", "/bin/sh", "-c", command],
            text=True, capture_output=True, timeout=timeout,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )

    def wait_for(self, command: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.run(command, timeout=30).returncode == 0:
                return True
            time.sleep(0.5)
        return False

    def host_pid(self, pid: int) -> int:
        """The host's pid of a process the container knows as `pid` (its NSpid line ends with it)."""
        inner = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if os.readlink(status.parent / "ns" / "pid") != inner:
                    continue
                nspid = next(line for line in status.read_text().splitlines() if line.startswith("NSpid:"))
            except (OSError, StopIteration):
                continue
            ids = nspid.split()[1:]
            if ids and ids[-1] == str(pid):
                return int(ids[0])
        raise LookupError(f"no host pid for container pid {pid}")

    def unit(self, prop: str) -> str:
        return self.run(f"systemctl show -p {prop} --value doorctl").stdout.strip()

    def board(self, **message: object) -> dict[str, object]:
        script = ("import json,socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
                  "s.sendall(sys.argv[2].encode()+b'\\n'); print(s.makefile().readline())")
        res = self.run(f"python3 -c \"{script}\" {BOARD} '{json.dumps(message)}'", timeout=30)
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else {}

    def close(self) -> None:
        self.run("systemctl poweroff", timeout=30)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, float, str]] = []

    def check(self, name: str, fn: Callable[[], tuple[bool, str]]) -> bool:
        started = time.monotonic()
        try:
            ok, detail = fn()
        except Exception as exc:  # a check that blows up is a failed check, with its reason
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        took = time.monotonic() - started
        self.rows.append((name, ok, took, detail))
        note = f"  -- {detail}" if detail else ""
        print(f"  {'ok  ' if ok else 'FAIL'} {took:7.1f}s  {name}{note}", flush=True)
        return ok

    def summary(self) -> int:
        failed = [r for r in self.rows if not r[1]]
        print(f"\npi-check: {len(self.rows) - len(failed)} ok, {len(failed)} failed")
        return 1 if failed else 0


class OperatorSide:
    """The operator's side on the host, as a deployment runs it: the checkout's `officepass` (its venv)
    makes the CA and a closed mosquitto's configuration, the broker runs, `officepass serve` runs with a
    `[broker]` section whose `reload` sends that broker SIGHUP. The container shares the host's network,
    so the door reaches both on 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "operator"
        self.root.mkdir()
        self.officepass = str(ROOT / ".venv" / "bin" / "officepass")
        self.broker_port, self.http_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.database = self.root / "officepass.db"
        root = self.root
        self.base = (
            f'[service]\nlisten = "127.0.0.1:{self.http_port}"\nbase_url = "{self.url}"\n'
            f'database = "sqlite:///{self.database}"\nkeys = "{root / "keys"}"\n'
            f'secret_file = "{root / "secret"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker_port}\nca_file = "{root / "ca" / "ca.pem"}"\n'
            f'username = "svc/a"\npassword_file = "{root / "broker" / "secrets" / "svc_a.password"}"\n'
            f'[broker]\nlisten = "127.0.0.1:{self.broker_port}"\nca_dir = "{root / "ca"}"\n'
            f'config_dir = "{root / "broker"}"\ndoor_host = "127.0.0.1"\n')
        self.settings = root / "serve.toml"
        self.settings.write_text(self.base)
        self.broker: subprocess.Popen[bytes] | None = None
        self.serve: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(self.officepass, *args, check=False)

    def start(self) -> tuple[bool, str]:
        for step in (("db", "upgrade", "--db", f"sqlite:///{self.database}"), ("keys", "new", "--keys",
                     str(self.root / "keys"), "k1"), ("ca", "init", "--config", str(self.settings)),
                     ("broker-config", "--config", str(self.settings))):
            done = self.cli(*step)
            if done.returncode != 0:
                return False, f"officepass {' '.join(step[:2])}: {(done.stderr or done.stdout)[-300:]}"
        log = (self.root / "mosquitto.log").open("ab")
        self.broker = subprocess.Popen(["mosquitto", "-c", str(self.root / "broker" / "mosquitto.conf")],
                                       stdout=log, stderr=subprocess.STDOUT)
        self.settings.write_text(self.base + f'reload = ["kill", "-HUP", "{self.broker.pid}"]\n')
        self.serve = subprocess.Popen([self.officepass, "serve", "--config", str(self.settings)],
                                      stdout=(self.root / "serve.log").open("ab"), stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=2) as answer:
                    if answer.status == 200:
                        return True, f"broker 127.0.0.1:{self.broker_port} (TLS, closed), service {self.url}"
            except OSError:
                time.sleep(0.3)
        return False, "officepass serve did not answer: " + (self.root / "serve.log").read_text()[-300:]

    def status(self, store: str, door: str) -> dict[str, Any]:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT online, status FROM doors WHERE store = ? AND door = ?",
                             (store, door)).fetchone()
        if row is None or not row[0]:
            return {}
        body = json.loads(row[1])
        return body if isinstance(body, dict) else {}

    def capacity(self, store: str) -> int | None:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT seats FROM store_seats WHERE store = ?", (store,)).fetchone()
        return None if row is None else json.loads(row[0]).get("capacity")

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        for proc in (self.serve, self.broker):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemonless_seconds(c: Container, stopping: str = "restarting to run with it") -> float | None:
    """From the daemon's last line saying `stopping` to its next "ready:" (the journal's clock)."""
    lines = c.run("journalctl -u doorctl -o short-unix --no-pager").stdout.splitlines()
    stopped = [float(x.split()[0]) for x in lines if stopping in x]
    if not stopped:
        return None
    ready = [float(x.split()[0]) for x in lines if "ready:" in x and float(x.split()[0]) > stopped[-1]]
    return ready[0] - stopped[-1] if ready else None


def fleet_checks(c: Container, op: OperatorSide, table: Table, arch: str) -> None:
    """Contract §11 on the booted container: enroll with one line, a remote configuration applied, a bad
    one refused with the reason in the status."""
    store, door = "pi-check", "main"

    def enroll() -> tuple[bool, str]:
        added = op.cli("door", "add", "--config", str(op.settings), store, door)
        line = next((x for x in added.stdout.splitlines() if "doorctl enroll" in x), "")
        if added.returncode != 0 or not line:
            return False, f"officepass door add: {(added.stderr or added.stdout)[-300:]}"
        # The one line the technician types, as `officepass door add` printed it (sudo: we are root).
        res = c.run(line.removeprefix("sudo "), timeout=120)
        if res.returncode != 0:
            return False, f"doorctl enroll: {(res.stderr or res.stdout).strip()[-300:]}"
        online = op.wait(lambda: bool(op.status(store, door)), 60)
        modes = c.run("stat -c '%a %U' /etc/doorctl/door.key /etc/doorctl/broker.password").stdout.split()
        return online and modes == ["600", "doorctl", "600", "doorctl"], \
            f"{res.stdout.strip().splitlines()[0]}; online at the service {online}; key and password {modes}"

    def remote_config() -> tuple[bool, str]:
        before = int(c.unit("NRestarts") or 0)
        done = op.cli("door", "config", "--config", str(op.settings), "--set", "door.seats=3", store, door)
        if done.returncode != 0:
            return False, done.stderr[-300:]
        applied = op.wait(lambda: op.status(store, door).get("config_version") == 1, 90)
        seats = op.wait(lambda: op.capacity(store) == 3, 30)
        restarted = int(c.unit("NRestarts") or 0) > before
        relay = c.board(op="state").get("relay")
        gap = _daemonless_seconds(c)
        shown = "?" if gap is None else f"{gap:.1f}"
        ok = applied and seats and restarted and relay is False and gap is not None and gap < 15
        return ok, (f"config_version 1 {applied}, seats 3 {seats}, restarted by systemd {restarted}, "
                    f"relay on {relay}, {shown} s from stopping to READY again")

    def bad_config() -> tuple[bool, str]:
        done = op.cli("door", "config", "--config", str(op.settings), "--set", "lock.unlock_seconds=50",
                      store, door)
        if done.returncode != 0:
            return False, done.stderr[-300:]
        refused = op.wait(lambda: "lock.unlock_seconds" in str(op.status(store, door).get("config_refused")),
                          60)
        status = op.status(store, door)
        return refused and status.get("config_version") == 1, f"status: {status.get('config_refused')}"

    target = "bookworm-" + {"amd64": "x86_64", "arm64": "aarch64"}[arch]
    install_seconds = 900 if arch != HOST_ARCH else 300  # pip under qemu-user is slow

    def release(version: str, source: Path) -> str | None:
        done = op.cli("release", "publish", "--config", str(op.settings), "--version", version,
                      "--source", str(source), "--target", target)
        return None if done.returncode == 0 else (done.stderr or done.stdout)[-300:]

    def update() -> tuple[bool, str]:
        problem = release("0.2.0", ROOT)
        if problem:
            return False, f"officepass release publish: {problem}"
        started = time.monotonic()
        # v2 (refused) set an unlock the door cannot take: give that key back to the file.
        done = op.cli("door", "config", "--config", str(op.settings), "--unset", "lock.unlock_seconds",
                      "--set", "update.release=0.2.0", store, door)
        if done.returncode != 0:
            return False, done.stderr[-300:]
        applied = op.wait(lambda: op.status(store, door).get("version") == "0.2.0"
                          and (op.status(store, door).get("update") or {}).get("state") == "applied",
                          install_seconds)
        took = time.monotonic() - started
        gap = _daemonless_seconds(c, "relay off, stopping")
        status = op.status(store, door)
        relay = c.board(op="state").get("relay")
        current = c.run("readlink /opt/doorctl/current").stdout.strip()
        shown = "?" if gap is None else f"{gap:.1f}"
        return applied and relay is False and current.endswith("/releases/0.2.0"), \
            (f"version {status.get('version')}, update {status.get('update')}, current -> {current}, "
             f"relay on {relay}; {took:.0f} s from the rollout, {shown} s from the old daemon's stop to "
             "the new one's READY")

    def rollback() -> tuple[bool, str]:
        broken = op.root / "broken-src"
        broken.mkdir()
        for part in ("pyproject.toml", "README.md", "controller", "drivers", "wire", "requirements"):
            src = ROOT / part
            if src.is_dir():
                shutil.copytree(src, broken / part,
                                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(src, broken / part)
        daemon = broken / "controller" / "daemon.py"
        daemon.write_text(daemon.read_text() + '\nraise SystemExit("this release is broken on purpose")\n')
        problem = release("0.3.0+broken", broken)
        if problem:
            return False, f"officepass release publish: {problem}"
        started = time.monotonic()
        done = op.cli("door", "config", "--config", str(op.settings), "--set", "update.release=0.3.0+broken",
                      store, door)
        if done.returncode != 0:
            return False, done.stderr[-300:]
        back = op.wait(lambda: (op.status(store, door).get("update") or {}).get("state") == "rolled_back"
                       and op.status(store, door).get("version") == "0.2.0", install_seconds + 180)
        took = time.monotonic() - started
        status = op.status(store, door)
        relay = c.board(op="state").get("relay")
        current = c.run("readlink /opt/doorctl/current").stdout.strip()
        update_report = status.get("update") or {}
        return back and relay is False and current.endswith("/releases/0.2.0") and \
            "0.3.0+broken" in str(update_report), (f"{update_report}; back on {status.get('version')}, "
                                                   f"current -> {current}, relay on {relay}; {took:.0f} s")

    for name, fn in (("enroll: one `doorctl enroll` line, the door online at the service", enroll),
                     ("remote configuration applied at a quiet moment, relay off", remote_config),
                     ("a bad remote configuration refused, the reason in the status", bad_config),
                     ("update: a signed release installed beside, switched to, reported", update),
                     ("a release whose daemon cannot start: rolled back by itself, relay off", rollback)):
        if not table.check(name, fn) and fn in (enroll, update):
            break


def checks(c: Container, table: Table) -> None:
    def booted() -> tuple[bool, str]:
        ok = c.wait_for("systemctl is-system-running --wait | grep -qE 'running|degraded'", 120)
        return ok, c.run("systemctl is-system-running").stdout.strip()

    def install() -> tuple[bool, str]:
        res = c.run("/src/scripts/install-pi.sh", timeout=3600)
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        return res.returncode == 0, " | ".join(tail)

    def install_again() -> tuple[bool, str]:
        res = c.run("/src/scripts/install-pi.sh", timeout=3600)
        return res.returncode == 0, "idempotent" if res.returncode == 0 else res.stderr[-300:]

    def start_on_sim() -> tuple[bool, str]:
        c.run("mkdir -p /etc/systemd/system/doorctl.service.d")
        c.run(f"cat > /etc/systemd/system/doorctl.service.d/pi-check.conf <<'EOF'\n{SIM_DROP_IN}EOF")
        c.run(f"cat > /etc/systemd/system/doorctl-sim.service <<'EOF'\n{SIM_UNIT}EOF")
        c.run("systemctl daemon-reload && systemctl enable --now doorctl-sim.service")
        if not c.wait_for(f"test -S {BOARD}", 60):
            board_log = c.run("journalctl -u doorctl-sim -n 20 --no-pager").stdout
            return False, f"the simulated board did not come up: {board_log}"
        c.run("systemctl restart doorctl")
        ok = c.wait_for("systemctl show -p SubState --value doorctl | grep -qx running", 120)
        status = c.unit("StatusText")
        return ok and "seats" in status, f"READY, status '{status}'"

    def status_answers() -> tuple[bool, str]:
        res = c.run("/opt/doorctl/.venv/bin/doorctl status --config /etc/doorctl/doorctl.toml --json")
        body = json.loads(res.stdout) if res.returncode == 0 else {}
        return res.returncode == 0 and body.get("store") is not None, f"lock {body.get('lock')}, " \
            f"platform {body.get('platform')}"

    def clock_readable() -> tuple[bool, str]:
        logs = c.run("journalctl -u doorctl --no-pager -o cat").stdout
        denied = [line for line in logs.splitlines() if "cannot read the clock's NTP state" in line]
        return not denied, denied[-1] if denied else "adjtimex allowed by the sandbox"

    def private_files() -> tuple[bool, str]:
        modes = c.run("stat -c '%a %U:%G %n' /var/lib/doorctl /var/lib/doorctl/status.sock "
                      "/var/lib/doorctl/doorctl.db /etc/doorctl /etc/doorctl/doorctl.toml").stdout
        other = c.run("runuser -u nobody -- sh -c 'cat /var/lib/doorctl/doorctl.db >/dev/null 2>&1 || "
                      "exit 0; exit 1' && runuser -u nobody -- sh -c "
                      "'ls /var/lib/doorctl >/dev/null 2>&1 && exit 1 || exit 0'")
        world = [line for line in modes.splitlines() if line and line.split()[0][-1] != "0"]
        return other.returncode == 0 and not world, " ; ".join(modes.split("\n")[:5])

    def watchdog() -> tuple[bool, str]:
        before = int(c.unit("NRestarts") or 0)
        c.run("systemctl kill -s SIGSTOP --kill-whom=main doorctl")
        killed = c.wait_for("journalctl -u doorctl --no-pager | grep -q 'Watchdog timeout'", 30)
        back = c.wait_for(f"test $(systemctl show -p NRestarts --value doorctl) -gt {before} && "
                          "systemctl show -p SubState --value doorctl | grep -qx running", 60)
        relay_off = "relay GPIO17 off" in c.run("journalctl -u doorctl --no-pager -o cat").stdout
        return killed and back and relay_off, f"watchdog kill {killed}, relay-off ran {relay_off}, " \
            f"restarted and ready {back}"

    def sigkill_unlocked() -> tuple[bool, str]:
        c.board(op="input", name="exit_button", active=True)
        time.sleep(0.05)
        c.board(op="input", name="exit_button", active=False)
        if not c.board(op="state").get("relay"):
            return False, "the exit button did not energize the relay"
        started = time.monotonic()
        c.run("systemctl kill -s SIGKILL --kill-whom=main doorctl")
        while c.board(op="state").get("relay") and time.monotonic() - started < 30:
            time.sleep(0.1)
        took = time.monotonic() - started
        return not c.board(op="state").get("relay") and took < 15, f"relay off {took:.1f}s after the kill " \
            "(bound: max_unlock_seconds 15)"

    def config_error() -> tuple[bool, str]:
        c.run("cp /etc/doorctl/doorctl.toml /root/good.toml && "
              "sed -i 's/^\\[door\\]/[door]\\ncolour = \"red\"/' /etc/doorctl/doorctl.toml")
        c.run("systemctl restart doorctl")
        failed = c.wait_for("systemctl show -p ActiveState --value doorctl | grep -qx failed", 30)
        restarts = c.unit("NRestarts")
        time.sleep(5)
        storm = c.unit("NRestarts") != restarts
        named = "door.colour: unknown key" in c.run("journalctl -u doorctl --no-pager -o cat -n 50").stdout
        c.run("cp /root/good.toml /etc/doorctl/doorctl.toml && systemctl restart doorctl")
        again = c.wait_for("systemctl show -p SubState --value doorctl | grep -qx running", 60)
        return failed and named and not storm and again, f"stopped {failed}, key named {named}, " \
            f"restart storm {storm}, back with the good file {again}"

    def lock_set() -> tuple[bool, str]:
        py = "/opt/doorctl/.venv/bin/python"
        versions = "import numpy, cv2; print(numpy.__version__, cv2.__version__)"
        numpy = c.run(f"{py} -c '{versions}'").stdout.split()
        lgpio = c.run(f"{py} -c 'import lgpio'").returncode == 0
        arm = c.run("uname -m").stdout.strip() == "aarch64"
        ok = len(numpy) == 2 and numpy[0].startswith("1.") and (lgpio or not arm)
        return ok, f"numpy {numpy[0] if numpy else '?'} (bookworm's picamera2 needs 1.x), OpenCV " \
            f"{numpy[1] if len(numpy) > 1 else '?'}, lgpio {'importable' if lgpio else 'absent'}"

    def lgpio_pipes() -> tuple[bool, str]:
        # lgpio writes .lgd-nfy* pipes into the current directory on import: inside the unit's own
        # namespaces (ProtectSystem=strict), as its user, the working directory must take them.
        pid = c.unit("MainPID")
        cwd = c.run(f"readlink /proc/{pid}/cwd").stdout.strip()
        uid, gid = c.run("id -u doorctl").stdout.strip(), c.run("id -g doorctl").stdout.strip()
        # The host's nsenter into the unit's mount namespace (a container's own nsenter cannot under
        # qemu-user, whose threads make setns fail), as the unit's user.
        probe = subprocess.run(
            ["nsenter", "-t", str(c.host_pid(int(pid))), "-m", "-S", uid, "-G", gid, "--", "/bin/sh", "-c",
             f"cd {cwd} && touch .lgd-nfy-check && rm .lgd-nfy-check"],
            text=True, capture_output=True, timeout=60)
        detail = f"working directory {cwd} writable in the unit's namespace"
        if probe.returncode != 0:
            detail = f"pid {pid}, cwd {cwd!r}: {(probe.stderr or probe.stdout).strip()[-200:]}"
        return probe.returncode == 0 and cwd == "/var/lib/doorctl", detail

    def no_unit_warnings() -> tuple[bool, str]:
        warnings = [line for line in c.run("journalctl -b --no-pager -o cat").stdout.splitlines()
                    if ("doorctl.service" in line or "doorctl-update." in line)
                    and ("Directory" in line or "unknown" in line.lower())]
        return not warnings, warnings[-1] if warnings else "systemd loads the units without a warning"

    def security() -> tuple[bool, str]:
        out = c.run("systemd-analyze security --no-pager doorctl.service").stdout
        line = next((x for x in out.splitlines() if "Overall exposure level" in x), "")
        try:
            level = float(line.split(":")[1].split()[0])
        except (IndexError, ValueError):
            return False, "no exposure level: " + out[-200:]
        return level <= 3.5, line.split(":", 1)[1].strip() + " (at most 3.5)"

    steps = [("container boots with systemd", booted), ("install-pi.sh", install),
             ("install-pi.sh again (idempotent)", install_again),
             ("doorctl.service on the simulated board reaches READY", start_on_sim),
             ("doorctl status answers", status_answers),
             ("the sandbox lets the door read NTP state", clock_readable),
             ("state and config not readable by others", private_files),
             ("SIGSTOP: watchdog kill, relay-off, restart, READY", watchdog),
             ("SIGKILL while unlocked: relay off within the bound", sigkill_unlocked),
             ("config error: key in the journal, no restart storm", config_error),
             ("the locked set: numpy 1.x, OpenCV, lgpio on arm64", lock_set),
             ("lgpio's pipes: the working directory is writable in the sandbox", lgpio_pipes),
             ("systemd has no warning about the units", no_unit_warnings),
             ("systemd-analyze security", security)]
    for name, fn in steps:
        if not table.check(name, fn) and fn in (booted, install, start_on_sim):
            break  # nothing after these can pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=["amd64", "arm64"], default=HOST_ARCH)
    parser.add_argument("--keep", action="store_true", help="leave the container's files for a look")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("pi-check: run as root (mmdebstrap, systemd-nspawn, nsenter)", file=sys.stderr)
        return 2
    table = Table()
    print(f"pi-check: Debian bookworm {args.arch} under systemd-nspawn", flush=True)
    ensure_tools(args.arch)
    tar: list[Path] = []

    def build() -> tuple[bool, str]:
        tar.append(rootfs(args.arch))
        return True, str(tar[0])

    if not table.check(f"root file system (cache {CACHE})", build):
        return table.summary()
    workdir = Path(tempfile.mkdtemp(prefix=f"run-{args.arch}-", dir=CACHE))
    container = Container(tar[0], workdir)
    operator = OperatorSide(workdir)
    try:
        checks(container, table)
        if all(ok for _, ok, _, _ in table.rows) and table.check(
                "operator side: closed broker and officepass serve on the host", operator.start):
            fleet_checks(container, operator, table, args.arch)
    finally:
        operator.stop()
        container.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return table.summary()


if __name__ == "__main__":
    sys.exit(main())
