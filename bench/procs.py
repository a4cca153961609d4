"""Helpers for benchmarks that run the door as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hwsim.server import BoardClient

ROOT = Path(__file__).resolve().parents[1]
TEST_PRIVATE = "vNAVQunfssqFgpICOrkdEJi15EvvfXeL2JYLw36IiuI="  # TEST-ONLY (tests/data/vectors)
TEST_PUBLIC = "hvIkyuindLwdofySPU81ayCX0dyGZ9TWywtBmUV59fg="


def write_config(path: Path, *, mqtt_port: int | None = None, camera: bool = True, seats: int = 1000,
                 unlock_seconds: float = 0.5) -> None:
    readers = ""
    if camera:
        readers = '[[reader]]\nname = "front"\ntype = "camera"\nside = "entry"\nsource = 0\n'
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\ntls = false\n' if mqtt_port else ""
    path.write_text(
        f'[door]\nstore = "bench"\nname = "main"\nseats = {seats}\n'
        '[lock]\nrelay_pin = "GPIO17"\ndoor_sensor_pin = "GPIO27"\nexit_button_pin = "GPIO22"\n'
        f'unlock_seconds = {unlock_seconds}\nmax_unlock_seconds = 5\n'
        # The bench machine has no NTP: commands would be refused clock_unsynced.
        f'{readers}[credentials]\ncommands_need_synced_clock = false\n'
        f'[credentials.keys]\nk1 = "{TEST_PUBLIC}"\n{mqtt}'
        f'[storage]\npath = "{path.parent / "doorctl.db"}"\n'
    )


def member_code(member: str, act: str | None = None, cti: bytes | None = None) -> str:
    """A fresh code for `member` (a random cti unless one is given: a fixed one, with a fixed
    `iat`, gives the same text every run, for decode sets that must not change)."""
    import base64
    import secrets

    from wire.codes import mint_code

    now = int(time.time()) if cti is None else 1_800_000_000
    return mint_code(base64.b64decode(TEST_PRIVATE), kid="k1", issuer="officepass", member=member, iat=now,
                     exp=now + 60, cti=cti or secrets.token_bytes(16), act=act)


class Door:
    """`doorctl run --sim` (hosting its own board) as a subprocess."""

    def __init__(self, config: Path, separate_board: bool = False) -> None:
        self.log = (config.parent / "door.log").open("w")
        self.board_proc: subprocess.Popen[bytes] | None = None
        if separate_board:
            # The board (and its frame renderer) in its own process, so the daemon's memory and CPU
            # are the door's alone, as on a Pi.
            self.board_proc = subprocess.Popen(
                [sys.executable, "-m", "controller.cli", "sim", "--config", str(config)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            end = time.monotonic() + 20
            while not (config.parent / "sim.sock").exists() and time.monotonic() < end:
                time.sleep(0.1)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "run", "--sim", "--config", str(config)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ},
        )
        self.log_path = config.parent / "door.log"
        end = time.monotonic() + 30
        while "ready:" not in self.log_path.read_text():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise SystemExit(f"door did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        self.board = BoardClient(config.parent / "sim.sock")

    def request(self, **message: Any) -> dict[str, Any]:
        return self.board.request(**message)

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while needle not in self.log_path.read_text():
            if time.monotonic() > end:
                raise SystemExit(f"no {needle!r} in the door log")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The daemon and its children (camera workers)."""
        extra: list[int] = []
        # Children are listed under the thread that started them (a reader thread), so look at all.
        for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            extra += [int(p) for p in children.read_text().split()]
        return [self.proc.pid, *extra]

    def stop(self) -> None:
        self.board.close()
        self.proc.terminate()
        self.proc.wait(15)
        if self.board_proc is not None:
            self.board_proc.terminate()
            self.board_proc.wait(15)
        self.log.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
