"""`doorctl doctor`: what a technician checks first, each ok / warn / fail with a one-line fix."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controller.clock import kernel_clock_synced
from controller.config import Config, ConfigError, load_config, load_mqtt_credentials
from controller.journal import check_journal_file
from controller.presence import SECRET_FILE
from drivers.display import SYSFS_GRAPHICS, DisplayError, read_geometry
from wire.credentials import loose_secret

if TYPE_CHECKING:
    from drivers.picamera import PicameraSource


@dataclass
class Finding:
    level: str  # ok | warn | fail
    what: str
    fix: str = ""


def check_config(path: str) -> tuple[Config | None, list[Finding]]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return None, [Finding("fail", f"config {path}: {p}", "edit the file; doorctl check-config lists all")
                      for p in exc.problems]
    found = [Finding("ok", f"config {path}")]
    found += check_remote(path)
    if config.mqtt is not None:
        try:
            load_mqtt_credentials(config.mqtt)
        except ConfigError as exc:
            fix = "copy the right file into place or fix the path; the door runs offline until then"
            found += [Finding("fail", p, fix) for p in exc.problems]
    return config, found


def check_remote(path: str) -> list[Finding]:
    """The service's configuration the door keeps (contract §11), and every key it sets over the file."""
    from controller.remote_config import load_effective, overridden

    try:
        effective = load_effective(path)
    except ConfigError:
        return []  # the file's own problems are reported above
    if effective.problem is not None:
        return [Finding("warn", f"remote configuration not used: {effective.problem}",
                        "the door runs on its file; the operator publishes a new version from the console")]
    if effective.document is None:
        return [Finding("ok", "remote configuration: none, the file alone")]
    return [Finding("ok", f"remote configuration v{effective.document.version} applied over the file"),
            *(Finding("ok", line) for line in overridden(effective))]


def check_update(config: Config) -> Finding:
    """The release running, the one asked for, and what the update agent last said (contract §11)."""
    from controller import __version__
    from controller.updates import STATE_FILE, UPDATE_DIR, AgentState
    from wire.fleet import UpdateState

    agent = AgentState.read(config.storage.state_dir / UPDATE_DIR / STATE_FILE)
    said = ""
    if agent is not None:
        said = f"; the update agent: {agent.state} {agent.version or ''}".rstrip()
        said += f" ({agent.reason})" if agent.reason else ""
    wanted = config.update.release
    line = f"release {__version__} running"
    line += f", {wanted} asked for" if wanted and wanted != __version__ else ""
    if agent is not None and agent.state in (UpdateState.FAILED, UpdateState.ROLLED_BACK):
        return Finding("warn", line + said, "journalctl -u doorctl-update -u doorctl; the operator "
                       "publishes a fixed release and rolls it out")
    if config.update.service is None:
        return Finding("ok", line + said + "; no [update] service (doorctl enroll sets it): "
                       "no remote updates")
    return Finding("ok", line + said)


def check_keys(config: Config) -> Finding:
    keys = config.credentials.keys
    return Finding("ok", f"{len(keys)} trusted key(s): {', '.join(keys)}")


RTC_ADVICE = ("fit a battery-backed real-time clock (a DS3231 module, or the Pi 5's own RTC with its "
              "battery): without one, after a power cut with no network the door's time restarts from "
              "its last saved time and fresh codes are denied not_yet_valid until NTP answers")


def check_clock(config: Config, rtc: Path = Path("/dev/rtc0")) -> list[Finding]:
    """NTP sync, the journal's time floor against the clock, and the real-time clock."""
    found: list[Finding] = []
    floor = _journal_floor(config)
    behind = floor - time.time() if floor is not None else 0.0
    if kernel_clock_synced():
        found.append(Finding("ok", "clock synchronized (NTP)"))
        if behind > 60:
            found.append(Finding("warn", f"the journal's time floor is {behind:,.0f} s ahead of the "
                                 "synchronized clock: an earlier run had a clock set ahead",
                                 "nothing to do: the door takes the synchronized time on its next start"))
    elif behind > 60:
        found.append(Finding("fail", f"the clock is {behind:,.0f} s behind the journal's time floor: the "
                             "door keeps its time at the floor, so codes minted now look not yet valid",
                             "set the time right and enable NTP (timedatectl set-ntp true); once NTP has "
                             "synchronized, the door takes its time again"))
    else:
        found.append(Finding("warn", "clock not synchronized: codes are checked against the door's time "
                             "floor and app commands are refused (clock_unsynced)",
                             "enable NTP: timedatectl set-ntp true; check access to the time servers"))
    if not rtc.exists():
        found.append(Finding("warn", "no real-time clock (/dev/rtc0)", RTC_ADVICE))
    return found


def _journal_floor(config: Config) -> float | None:
    """The time floor the journal holds, read without writing (None when there is no journal)."""
    path = Path(config.storage.path)
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'time_floor'").fetchone()
    except sqlite3.Error:
        return None
    return float(row[0]) if row is not None else None


def check_broker(config: Config, timeout: float = 3.0) -> Finding:
    m = config.mqtt
    if m is None:
        return Finding("warn", "no [mqtt] section: the door runs offline",
                       "add [mqtt] to sync with the cloud")
    try:
        credentials = load_mqtt_credentials(m)
    except ConfigError:
        return Finding("fail", f"broker {m.host}:{m.port}: not tried, the [mqtt] files do not load (above)")
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout) as sock:
            if credentials.tls is not None:
                with credentials.tls.wrap_socket(sock, server_hostname=m.host) as tls:
                    return Finding("ok", f"broker {m.host}:{m.port} reachable, TLS {tls.version()}")
    except ssl.SSLError as exc:
        return Finding("fail", f"broker {m.host}:{m.port}: TLS failed: {exc.reason}",
                       "check mqtt.ca_file, cert_file, key_file and the broker's certificate name")
    except OSError as exc:
        return Finding("fail", f"broker {m.host}:{m.port} unreachable: {exc}",
                       "check the network, mqtt.host and mqtt.port (the door keeps working offline)")
    return Finding("ok", f"broker {m.host}:{m.port} reachable (no TLS)")


def check_readers(config: Config) -> list[Finding]:
    found = []
    for r in config.readers:
        if r.type == "serial":
            assert r.port is not None
            if Path(r.port).exists():
                if os.access(r.port, os.R_OK | os.W_OK):
                    found.append(Finding("ok", f"reader {r.name}: serial port {r.port}"))
                else:
                    found.append(Finding("fail", f"reader {r.name}: serial port {r.port} not accessible",
                                         "add the user to 'dialout'"))
            else:
                found.append(Finding("fail", f"reader {r.name}: serial port {r.port} missing",
                                     "plug the scanner in; use /dev/serial/by-id/... paths"))
        else:
            found.append(_camera(r.name, r.source))
    return found


def _camera(name: str, source: str | int | None) -> Finding:
    from drivers import picamera

    pi_camera = picamera.parse_source(source) if isinstance(source, str) else None
    if pi_camera is not None:
        return _pi_camera(name, pi_camera)
    import cv2

    if source is None:
        return Finding("fail", f"reader {name}: camera without a source", "set reader.source")
    capture = cv2.VideoCapture(source)
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
    finally:
        capture.release()
    if ok and frame is not None:
        size = f"{frame.shape[1]}x{frame.shape[0]}"
        return Finding("ok", f"reader {name}: camera {source} delivers {size} frames")
    return Finding("fail", f"reader {name}: camera {source} gives no frames",
                   "check the cable and /dev/v4l/by-id/..., and that the user is in 'video'")


def _pi_camera(name: str, source: PicameraSource) -> Finding:
    from drivers import picamera

    try:
        from picamera2 import Picamera2
    except ImportError:
        return Finding("fail", f"reader {name}: picamera2 is not installed", picamera.INSTALL_HINT)
    cameras = Picamera2.global_camera_info()
    if source.camera >= len(cameras):
        return Finding("fail", f"reader {name}: no Pi camera {source.camera} ({len(cameras)} found)",
                       "check the ribbon cable and `rpicam-hello --list-cameras`")
    model = cameras[source.camera].get("Model", "?")
    return Finding("ok", f"reader {name}: Pi camera {source.camera} ({model}) at "
                         f"{source.size[0]}x{source.size[1]}")


def check_gpio() -> Finding:
    chips = sorted(Path("/dev").glob("gpiochip*"))
    if not chips:
        return Finding("warn", "no /dev/gpiochip*: not a Raspberry Pi (run with --sim to simulate)")
    if all(os.access(c, os.R_OK | os.W_OK) for c in chips):
        return Finding("ok", f"GPIO access: {', '.join(c.name for c in chips)}")
    return Finding("fail", "no read/write access to /dev/gpiochip*", "add the user to the 'gpio' group")


def check_disk(config: Config) -> Finding:
    where = Path(config.storage.path).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    free_mb = shutil.disk_usage(where).free / 2**20
    if free_mb < 50:
        return Finding("fail", f"{free_mb:.0f} MB free for the journal at {where}",
                       "free space now: the door denies codes it cannot journal")
    if free_mb < 500:
        return Finding("warn", f"only {free_mb:.0f} MB free at {where}", "clean up logs or old files")
    return Finding("ok", f"{free_mb:,.0f} MB free at {where}")


def check_journal(config: Config) -> Finding:
    """The journal file itself, read only: whether the daemon runs or not."""
    path = Path(config.storage.path)
    problem = check_journal_file(path)
    if problem is not None:
        return Finding("fail", f"journal {path}: {problem}",
                       "stop doorctl, move the file aside (keep it for the events it holds), start again")
    return Finding("ok", f"journal {path}: {'intact' if path.exists() else 'not made yet'}")


def check_secret_modes(config: Config) -> list[Finding]:
    """The files only the door may read: its journal, its broker key and password."""
    files: list[tuple[str, str | None]] = [("storage.path", config.storage.path)]
    if config.mqtt is not None:
        files += [("mqtt.key_file", config.mqtt.key_file), ("mqtt.password_file", config.mqtt.password_file)]
    found = [Finding("fail", f"{key}: {why}", f"chmod 600 {path} (owner doorctl)")
             for key, path in files if (why := loose_secret(path)) is not None]
    return found or [Finding("ok", "the journal and the broker secrets are readable by the door only")]


def check_power() -> Finding:
    vcgencmd = shutil.which("vcgencmd")
    if vcgencmd is None:
        return Finding("ok", "undervoltage: vcgencmd not present (not a Pi), skipped")
    try:
        out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
        value = int(out.strip().split("=")[1], 16)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return Finding("warn", "undervoltage: could not read vcgencmd get_throttled")
    if value & 0x1:
        return Finding("fail", "undervoltage now", "use the official 5.1 V / 3 A supply and a short cable")
    if value & 0x10000:
        return Finding("warn", "undervoltage has occurred since boot", "check the power supply")
    return Finding("ok", "power: no undervoltage")


def check_display(
    config: Config, sysfs: Path = SYSFS_GRAPHICS, devices: Path = Path("/dev")
) -> list[Finding]:
    """The presence screen (contract §9): its framebuffer, and a secret kept to the door's user."""
    presence = config.presence
    if presence is None:
        return []
    found: list[Finding] = []
    secret = config.storage.state_dir / SECRET_FILE
    if secret.exists() and secret.stat().st_mode & 0o077:
        found.append(Finding("fail", f"presence secret {secret} is readable by others",
                             f"chmod 600 {secret} (the door also fixes it at start)"))
    if presence.framebuffer is None:
        if presence.require:
            acts = ", ".join(sorted(presence.require))
            found.append(Finding("warn", f"presence: no screen (display none), yet {acts} from the app need "
                                 "a scanned code: those commands are always refused not_present",
                                 'set presence.display = "fb:/dev/fbN", or presence.require = [] with a '
                                 "printed poster (doorctl poster)"))
        else:
            found.append(Finding("ok", "presence: no screen; the printed poster serves (doorctl poster)"))
        return found
    device = devices / Path(presence.framebuffer).name
    try:
        geometry = read_geometry(presence.framebuffer, sysfs)
    except DisplayError as exc:
        found.append(Finding("fail", f"screen {presence.framebuffer}: {exc}",
                             "connect and enable the panel (HDMI, DSI, or its fbtft overlay in "
                             "/boot/firmware/config.txt), then reboot"))
        return found
    if not os.access(device, os.W_OK):
        found.append(Finding("fail", f"screen {presence.framebuffer}: cannot be written by this user",
                             "add the door's user to the video group (scripts/install-pi.sh does it: "
                             "usermod -a -G video doorctl)"))
        return found
    format_name = "RGB565" if geometry.bits_per_pixel == 16 else "XRGB8888"
    size = f"{geometry.width}x{geometry.height}"
    found.append(Finding("ok", f"screen {presence.framebuffer}: {size} {format_name}"))
    return found


def check_daemon(config: Config) -> list[Finding]:
    """The running daemon's own view: its alarms, each with what to do."""
    from controller.status_socket import ALARM_ADVICE, query, status_problem, status_socket_path

    path = status_socket_path(config.storage.path)
    try:
        status = query(path, timeout=3.0)
    except (OSError, ValueError):
        return [Finding("warn", f"the daemon does not answer on {path}",
                        "systemctl status doorctl; journalctl -u doorctl -n 50")]
    problem = status_problem(status)
    if problem is not None:
        return [Finding("fail", f"the daemon answers but: {problem}", "journalctl -u doorctl -n 50")]
    alarms = [str(a) for a in status["alarms"]]
    if not alarms:
        return [Finding("ok", "the running daemon reports no alarm")]
    return [Finding("fail" if a != "fire" else "warn", f"alarm {a}", ALARM_ADVICE.get(a, "")) for a in alarms]


def run_doctor(path: str, out: Callable[[str], None] = print) -> int:
    config, findings = check_config(path)
    if config is not None:
        findings += [check_keys(config), check_update(config), *check_clock(config),
                     check_broker(config), *check_readers(config),
                     *check_display(config), check_gpio(), check_disk(config), check_journal(config),
                     *check_secret_modes(config), check_power(), *check_daemon(config)]
    for f in findings:
        out(f"{f.level:<5} {f.what}" + (f"\n      fix: {f.fix}" if f.fix and f.level != "ok" else ""))
    return 1 if any(f.level == "fail" for f in findings) else 0
