"""`doorctl enroll --service URL CODE` (contract §11): the technician's one command on a new Pi.

1. makes the door's own key pair (EC P-256; the private key is written 0600 and never sent);
2. posts the one-time code and a signing request for that key to the service, over HTTPS (plain
   HTTP only to this machine, for a bench);
3. writes what comes back: the broker's CA, the door's certificate and broker password, and in the
   config the door's store and name, `[mqtt]`, the trusted keys, and the presence URL where the door
   has a `[presence]` section. The wiring (`[lock]` pins, `[[reader]]`, `[storage]`) stays the
   technician's; every comment stays;
4. checks the result as `doorctl check-config` does (a failure puts the old file back);
5. restarts the unit.

A refused code (unknown, used, expired) is a clear message and nothing is written.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controller.config import ConfigError, load_config, load_mqtt_credentials, read_config_file
from controller.config_edit import EditProblem, edit
from controller.files import write_atomic
from controller.net import loopback
from wire.fleet import (
    ENROLL_PATH,
    MAX_ENROLL_BYTES,
    EnrollGrant,
    EnrollRefusal,
    EnrollRequest,
    FleetWireError,
    normal_enroll_code,
)

UNIT = "doorctl.service"
DAEMON_USER = "doorctl"
TIMEOUT_SECONDS = 30
# Beside the config, in /etc/doorctl: read by the daemon (its user), written only here.
CA_FILE, CERT_FILE, KEY_FILE, PASSWORD_FILE = "broker-ca.pem", "door.pem", "door.key", "broker.password"


class EnrollFailed(Exception):
    """Why enrollment stopped; `code` is the exit status (2: the code, the address or the file given,
    1: the network, the service's answer or this machine). Unless said, nothing was written."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Enrolled:
    grant: EnrollGrant
    config: Path
    written: list[Path]
    restarted: str  # what happened to the unit


def _endpoint(service: str) -> str:
    parts = urlsplit(service)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EnrollFailed(f"--service {service!r}: give the pass service's address, https://HOST", 2)
    if parts.scheme == "http" and not loopback(parts.hostname):
        raise EnrollFailed(f"--service {service!r}: plain http only to this machine; the code and the "
                           "door's identity travel over https", 2)
    return service.rstrip("/") + ENROLL_PATH


def new_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The door's key pair, and a signing request for it (its signature proves we hold the key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "doorctl enrollment")]))
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def ask(endpoint: str, request: EnrollRequest, ca_file: str | None) -> EnrollGrant:
    context = ssl.create_default_context(cafile=ca_file) if endpoint.startswith("https") else None
    req = urllib.request.Request(endpoint, data=request.to_json().encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS, context=context) as answer:
            body = answer.read(MAX_ENROLL_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raw = exc.read(MAX_ENROLL_BYTES + 1)
        try:
            refusal = EnrollRefusal.from_json(raw)
        except FleetWireError:
            raise EnrollFailed(f"the service answered {exc.code} {exc.reason}, not an enrollment answer: is "
                               f"{endpoint} the pass service?") from None
        raise EnrollFailed(f"the service refused the code ({refusal.error}): {refusal.detail}. Nothing was "
                           "written", 2) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrollFailed(f"cannot reach {endpoint}: {reason}") from None
    try:
        return EnrollGrant.from_json(body)
    except FleetWireError as exc:
        raise EnrollFailed(f"the service's answer does not fit: {exc}") from None


def _daemon_owner() -> tuple[int, int] | None:
    """The daemon's user and group when we are root and it exists (install-pi.sh makes it)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(DAEMON_USER).pw_uid, grp.getgrnam(DAEMON_USER).gr_gid
    except KeyError:
        return None


def edited_config(text: str, doc: dict[str, object], grant: EnrollGrant, directory: Path,
                  service: str) -> str:
    mqtt: dict[str, object] = {
        "host": grant.broker_host, "port": grant.broker_port, "tls": grant.tls,
        "ca_file": str(directory / CA_FILE), "cert_file": str(directory / CERT_FILE),
        "key_file": str(directory / KEY_FILE), "username": grant.username,
        "password_file": str(directory / PASSWORD_FILE), "topic_prefix": grant.topic_prefix,
    }
    keys: dict[str, dict[str, object]] = {"door": {"store": grant.store, "name": grant.door},
                                          "credentials": {"issuer": grant.issuer}, "mqtt": mqtt,
                                          "update": {"service": service}}
    if grant.presence_url is not None and isinstance(doc.get("presence"), dict):
        keys["presence"] = {"url": grant.presence_url}
    return edit(text, keys, whole={"credentials.keys": dict(grant.keys)})


def enroll(service: str, code_text: str, config_path: Path, *, ca_file: str | None = None,
           restart: bool = True) -> Enrolled:
    code = normal_enroll_code(code_text)
    if code is None:
        raise EnrollFailed(f"{code_text!r} is not an enrollment code: five groups of four letters and "
                           "digits, "
                           "as `officepass door add` printed it", 2)
    endpoint = _endpoint(service)
    try:
        text = config_path.read_text(encoding="utf-8")
        doc = read_config_file(config_path)
    except (OSError, UnicodeDecodeError, ConfigError) as exc:
        raise EnrollFailed(f"{config_path}: {exc} (install-pi.sh puts one there)", 2) from None
    directory = config_path.parent
    key, csr = new_key()
    grant = ask(endpoint, EnrollRequest(code, csr), ca_file)
    try:
        new_text = edited_config(text, doc, grant, directory, service.rstrip("/"))
    except EditProblem as exc:
        raise EnrollFailed(f"{config_path} cannot take the door's settings: {exc}") from None

    owner = _daemon_owner()
    backup = config_path.with_name(config_path.name + ".before-enroll")
    written: list[Path] = []
    shutil.copy2(config_path, backup)
    try:
        secret = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        for name, data, mode, who in (
                (KEY_FILE, secret, 0o600, owner),
                (PASSWORD_FILE, (grant.password + "\n").encode(), 0o600, owner),
                (CERT_FILE, grant.certificate_pem.encode(), 0o644, None),
                (CA_FILE, grant.ca_pem.encode(), 0o644, None)):
            write_atomic(directory / name, data, mode, who)
            written.append(directory / name)
        config_mode = config_path.stat().st_mode & 0o777
        config_owner = (config_path.stat().st_uid, config_path.stat().st_gid) if os.geteuid() == 0 else None
        write_atomic(config_path, new_text, config_mode, config_owner)
        config = load_config(config_path)
        if config.mqtt is not None:
            load_mqtt_credentials(config.mqtt)
    except (OSError, ConfigError) as exc:
        shutil.copy2(backup, config_path)
        problems = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        raise EnrollFailed(f"the enrolled configuration does not check ({problems}); {config_path} is as "
                           "it was, the code is used: show this to the operator, who makes a new "
                           "one") from None
    finally:
        backup.unlink(missing_ok=True)
    return Enrolled(grant, config_path, written, _restart() if restart else "not restarted (--no-restart)")


def _restart() -> str:
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return "no systemd here: start the door with `doorctl run`"
    done = subprocess.run(["systemctl", "restart", UNIT], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"systemctl restart {UNIT} failed: {done.stderr.strip()[-300:]}"
    return f"{UNIT} restarted"


def main(service: str, code: str, config_path: str, ca_file: str | None, restart: bool) -> int:
    try:
        done = enroll(service, code, Path(config_path), ca_file=ca_file, restart=restart)
    except EnrollFailed as exc:
        print(f"doorctl enroll: {exc}", file=sys.stderr)
        return exc.code
    grant = done.grant
    role = "the store's controller" if grant.controller else "a door of the store"
    print(f"enrolled as {grant.store}/{grant.door} ({role}), broker {grant.broker_host}:{grant.broker_port} "
          f"as {grant.username}; {len(grant.keys)} trusted key(s)")
    print(f"wrote {done.config} and {', '.join(str(p) for p in done.written)}")
    print(done.restarted)
    return 0
