"""`doorctl doctor`: what a technician checks first, each ok / warn / fail with a one-line fix."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controller.clock import kernel_clock_synced
from controller.config import Config, ConfigError, load_config, referenced_file_problems

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
    fix = "copy the file into place or fix the path"
    found += [Finding("fail", p, fix) for p in referenced_file_problems(config)]
    return config, found


def check_keys(config: Config) -> Finding:
    keys = config.credentials.keys
    return Finding("ok", f"{len(keys)} trusted key(s): {', '.join(keys)}")


def check_clock() -> Finding:
    if kernel_clock_synced():
        return Finding("ok", "clock synchronized (NTP)")
    return Finding("warn", "clock not synchronized: codes are checked against the persisted time floor",
                   "enable NTP: timedatectl set-ntp true; check network access to the time servers")


def check_broker(config: Config, timeout: float = 3.0) -> Finding:
    m = config.mqtt
    if m is None:
        return Finding("warn", "no [mqtt] section: the door runs offline",
                       "add [mqtt] to sync with the cloud")
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout) as sock:
            if m.tls:
                context = ssl.create_default_context(cafile=m.ca_file or None)
                if m.cert_file and m.key_file:
                    context.load_cert_chain(m.cert_file, m.key_file)
                with context.wrap_socket(sock, server_hostname=m.host) as tls:
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

    capture = cv2.VideoCapture(source)  # type: ignore[arg-type]
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


def run_doctor(path: str, out: Callable[[str], None] = print) -> int:
    config, findings = check_config(path)
    if config is not None:
        findings += [check_keys(config), check_clock(), check_broker(config), *check_readers(config),
                     check_gpio(), check_disk(config), check_power()]
    for f in findings:
        out(f"{f.level:<5} {f.what}" + (f"\n      fix: {f.fix}" if f.fix and f.level != "ok" else ""))
    return 1 if any(f.level == "fail" for f in findings) else 0
