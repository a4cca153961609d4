"""`officepass broker-config`: a closed mosquitto for the fleet the service knows (contract §4).

It writes into one directory:
* `mosquitto.conf`: a TLS listener (the operator's CA, `officepass ca init`), no anonymous client,
  every client id bound to its identity (`use_username_as_clientid`), persistence on; a plain
  listener on 127.0.0.1 only when `[broker] plain_port` asks for one (tests);
* `passwords` (mosquitto_passwd's format) and `acl` (wire.acl's rules, every door and service
  instance the service knows, plus the read-only observers), both 0600;
* `secrets/{identity}.password` (0600): each identity's password, made once and kept, to hand to that
  door or instance (`[mqtt] password_file`).

Run it again after a door is added; `kill -HUP` the broker (or `systemctl reload mosquitto`) and it
reads the new passwords and rules without dropping anyone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.ca import BROKER_CERT, BROKER_KEY, CA_CERT, write_private
from officepass.models import StoreRecord
from wire.acl import Identity, door_identity, observer_identity, service_identity
from wire.topics import Topics

PBKDF2_ITERATIONS = 101  # mosquitto 2.0's `$7$` format: PBKDF2-SHA512, 12-byte salt, 64-byte hash


@dataclass(frozen=True)
class BrokerPlan:
    """What the broker is told: where it listens, its certificate, and who may connect."""

    listen_host: str
    listen_port: int
    plain_port: int | None  # a plain listener on 127.0.0.1 (tests only); None: none
    ca_dir: Path
    identities: list[Identity]


def password_hash(password: str, salt: bytes | None = None) -> str:
    """mosquitto_passwd's hash of `password`."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def secret_path(out: Path, username: str) -> Path:
    return out / "secrets" / (username.replace("/", "_") + ".password")


def fleet_identities(db: Session, topics: Topics, instances: list[str], observers: list[str],
                     home_assistant: bool = False) -> list[Identity]:
    """Every door of every store (the first door named is the store's controller), every service
    instance, every observer."""
    found: list[Identity] = [service_identity(topics, i) for i in instances]
    for store in db.execute(select(StoreRecord).order_by(StoreRecord.id)).scalars():
        for n, door in enumerate(store.doors.get("names", [])):
            found.append(door_identity(topics, store.id, door, controller=n == 0,
                                       home_assistant=home_assistant))
    found += [observer_identity(topics, name) for name in observers]
    return found


def acl_text(identities: list[Identity]) -> str:
    lines = ["# Written by `officepass broker-config` from wire.acl (contract §4): do not edit by hand.",
             "# Anything not granted here is refused."]
    for identity in identities:
        lines += ["", f"user {identity.username}"]
        lines += [f"topic write {t}" for t in identity.publish]
        lines += [f"topic read {t}" for t in identity.subscribe]
    return "\n".join(lines) + "\n"


def conf_text(plan: BrokerPlan, out: Path) -> str:
    run_as_root = "user root\n" if os.geteuid() == 0 else ""  # as root, mosquitto would drop to its own user
    # The client id is the identity's username: nobody can take over another's id. (A listener
    # setting: written before any listener, mosquitto would open a default one on 1883 for it.)
    bound = "use_username_as_clientid true\n"
    listeners = (f"listener {plan.listen_port} {plan.listen_host}\n{bound}"
                 f"cafile {plan.ca_dir / CA_CERT}\ncertfile {plan.ca_dir / BROKER_CERT}\n"
                 f"keyfile {plan.ca_dir / BROKER_KEY}\ntls_version tlsv1.2\n")
    if plan.plain_port is not None:
        listeners += ("\n# Plain, on loopback only: for tests on this machine, never for a fleet.\n"
                      f"listener {plan.plain_port} 127.0.0.1\n{bound}")
    return (
        "# Written by `officepass broker-config`: a closed broker for the fleet (contract §4).\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {out / 'passwords'}\n"
        f"acl_file {out / 'acl'}\n"
        f"persistence true\npersistence_location {out / 'data'}/\n"
        "max_queued_messages 200000\nset_tcp_nodelay true\n"
        f"{run_as_root}\n{listeners}"
    )


def write_broker_config(plan: BrokerPlan, out: Path) -> list[Path]:
    """Write the configuration; existing identities keep their passwords. The files written."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "data").mkdir(exist_ok=True, mode=0o700)
    (out / "secrets").mkdir(exist_ok=True, mode=0o700)
    written: list[Path] = []
    hashes: list[str] = []
    for identity in plan.identities:
        path = secret_path(out, identity.username)
        if path.exists():
            password = path.read_text().strip()
        else:
            password = secrets.token_urlsafe(24)
            write_private(path, (password + "\n").encode())
            written.append(path)
        hashes.append(f"{identity.username}:{password_hash(password)}")
    write_private(out / "passwords", ("\n".join(hashes) + "\n").encode())
    write_private(out / "acl", acl_text(plan.identities).encode())
    (out / "mosquitto.conf").write_text(conf_text(plan, out))
    return [*written, out / "passwords", out / "acl", out / "mosquitto.conf"]
