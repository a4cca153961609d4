"""Enrollment (contract §11): a one-time code per door, and what a door gets for it.

`officepass door add STORE DOOR` (or the console) registers the door, as the store's controller when
it is the store's first, and makes a code: 100 random bits, shown once, stored only as its SHA-256,
valid 24 h, good for one enrollment. `doorctl enroll` on the Pi posts it with a signing request for
the key pair it just made; `redeem` takes the code (one statement, so two instances cannot both),
signs the door's client certificate, gives its broker identity a new password (the one before, a
replaced Pi's, stops working when the broker reloads), rewrites the broker's password file and ACL,
and reloads the broker. Who made each code, when and from where it was used, and with which key, is
kept in `enrollments`; every identity handed out in `door_identities`.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from officepass.broker_config import BrokerPlan, fleet_identities, secret_path, write_broker_config
from officepass.ca import CA_CERT, CaProblem, door_request, sign_client
from officepass.keys import KeyRing
from officepass.members import STORE_RE
from officepass.models import DoorIdentity, Enrollment, StoreRecord, stored_time
from officepass.settings import BrokerSettings
from wire.acl import door_username
from wire.fleet import (
    ENROLL_CODE_TTL_SECONDS,
    EnrollError,
    EnrollGrant,
    EnrollRequest,
    door_page_template,
    new_enroll_code,
    normal_enroll_code,
)
from wire.topics import Topics

log = logging.getLogger("officepass.enrollment")
RELOAD_SECONDS = 30


class EnrollProblem(Exception):
    """Why a code was not made or not redeemed: `error` for the door, the message for people."""

    def __init__(self, error: EnrollError, detail: str) -> None:
        super().__init__(detail)
        self.error = error


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class NewCode:
    code: str
    store: str
    door: str
    controller: bool
    expires: datetime


def add_door(db: Session, store: str, door: str, *, by: str, now: datetime | None = None) -> NewCode:
    """Register the door (and its store, named by its id until renamed) and make its enrollment code.
    A door already registered gets a new code: that is how a replaced Pi is enrolled."""
    if not STORE_RE.fullmatch(store) or not STORE_RE.fullmatch(door):
        raise EnrollProblem(EnrollError.BAD_REQUEST, "store and door ids are 1-64 characters of A-Za-z0-9._-")
    now = now or datetime.now(UTC)
    record = db.get(StoreRecord, store, with_for_update=True)
    if record is None:
        record = StoreRecord(id=store, name=store, doors={"names": [door]}, areas="", rules="")
        db.add(record)
    elif door not in record.doors.get("names", []):
        record.doors = {**record.doors, "names": [*record.doors.get("names", []), door]}
    code = new_enroll_code()
    expires = now + timedelta(seconds=ENROLL_CODE_TTL_SECONDS)
    db.add(Enrollment(code_hash=code_hash(code), store=store, door=door, created=now, created_by=by[:64],
                      expires=expires))
    db.flush()
    controller = record.doors["names"][0] == door
    log.info("enrollment code made for %s/%s by %s (until %s)", store, door, by, expires.isoformat())
    return NewCode(code, store, door, controller, expires)


@dataclass(frozen=True)
class EnrollPlace:
    """What the service hands an enrolled door besides its identity: the broker and the keys."""

    broker: BrokerSettings
    topic_prefix: str
    base_url: str
    keys: KeyRing


def redeem(db: Session, request: EnrollRequest, place: EnrollPlace, peer: str,
           now: datetime | None = None) -> EnrollGrant:
    """The door's identity for a good code; EnrollProblem for anything else (nothing is handed out).
    The caller commits; `reload_broker` after the commit makes the identity work."""
    now = now or datetime.now(UTC)
    code = normal_enroll_code(request.code)
    if code is None:
        raise EnrollProblem(EnrollError.UNKNOWN_CODE, "that is not an enrollment code (five groups of four "
                            "letters and digits, from `officepass door add`)")
    digest = code_hash(code)
    try:
        csr = door_request(request.csr_pem.encode())
    except CaProblem as exc:
        raise EnrollProblem(EnrollError.BAD_REQUEST, f"csr: {exc}") from None
    key_sha = hashlib.sha256(csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    # One statement takes the code: of two concurrent redemptions (two instances), one gets a row.
    taken = db.execute(update(Enrollment)
                       .where(Enrollment.code_hash == digest, Enrollment.used.is_(None),
                              Enrollment.expires > now)
                       .values(used=now, used_from=peer[:64], key_sha256=key_sha)
                       .returning(Enrollment.id, Enrollment.store, Enrollment.door)).first()
    if taken is None:
        raise _why_not(db, digest)
    enrollment_id, store, door = taken
    username = door_username(store, door)
    try:
        certificate = sign_client(place.broker.ca_dir, request.csr_pem.encode(), username)
    except CaProblem as exc:
        # The code stays unused: the door may try again once the operator's CA is right.
        db.rollback()
        raise EnrollProblem(EnrollError.NOT_READY, str(exc)) from None
    for old in db.execute(select(DoorIdentity).where(DoorIdentity.store == store, DoorIdentity.door == door,
                                                     DoorIdentity.revoked.is_(None))).scalars():
        old.revoked = now
        log.info("identity of %s/%s issued %s revoked: the door was enrolled again", store, door,
                 stored_time(old.issued).isoformat())
    db.add(DoorIdentity(store=store, door=door, enrollment=enrollment_id, key_sha256=key_sha,
                        certificate_serial=format(certificate.serial_number, "x"), issued=now))
    db.flush()
    password = _new_password(db, place, username)
    record = db.get(StoreRecord, store)
    controller = record is not None and record.doors.get("names", [None])[0] == door
    log.info("%s/%s enrolled from %s (key sha256 %s)", store, door, peer, key_sha[:16])
    return EnrollGrant(
        store=store, door=door, controller=controller, broker_host=place.broker.door_host,
        broker_port=place.broker.listen_port, tls=True, topic_prefix=place.topic_prefix,
        username=username, password=password,
        ca_pem=(place.broker.ca_dir / CA_CERT).read_text(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        issuer=place.keys.issuer, keys={k.kid: k.public_b64 for k in place.keys.public_keys()},
        presence_url=door_page_template(place.base_url),
    )


def _why_not(db: Session, digest: str) -> EnrollProblem:
    row = db.execute(select(Enrollment).where(Enrollment.code_hash == digest)).scalar_one_or_none()
    if row is None:
        return EnrollProblem(EnrollError.UNKNOWN_CODE, "this code is not known: check it, or make a new one "
                             "with `officepass door add STORE DOOR`")
    if row.used is not None:
        return EnrollProblem(EnrollError.USED_CODE, f"this code enrolled {row.store}/{row.door} already "
                             f"({stored_time(row.used):%Y-%m-%d %H:%M} UTC); a code works once: make a new "
                             "one with `officepass door add`")
    return EnrollProblem(EnrollError.EXPIRED_CODE, f"this code for {row.store}/{row.door} expired "
                         f"{stored_time(row.expires):%Y-%m-%d %H:%M} UTC (codes last 24 h): make a new one "
                         "with `officepass door add`")


def _new_password(db: Session, place: EnrollPlace, username: str) -> str:
    """A new password for the identity (the old one goes), and the broker's files rewritten."""
    broker = place.broker
    path = secret_path(broker.config_dir, username)
    path.unlink(missing_ok=True)
    identities = fleet_identities(db, Topics(place.topic_prefix), broker.instances, broker.observers,
                                  broker.home_assistant)
    if not any(i.username == username for i in identities):
        raise EnrollProblem(EnrollError.NOT_READY, f"{username} is not among the fleet's identities")
    plan = BrokerPlan(broker.listen_host, broker.listen_port, broker.plain_port, broker.ca_dir, identities)
    try:
        write_broker_config(plan, broker.config_dir)
        return path.read_text().strip()
    except OSError as exc:
        raise EnrollProblem(EnrollError.NOT_READY, f"the broker's files in {broker.config_dir} cannot be "
                            f"written: {exc}") from None


def reload_broker(broker: BrokerSettings) -> str | None:
    """Run `[broker] reload` so the broker reads the new passwords and rules; why it failed, or None."""
    if not broker.reload:
        return None
    try:
        done = subprocess.run(broker.reload, capture_output=True, text=True, timeout=RELOAD_SECONDS,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(broker.reload)}: {exc}"
    if done.returncode != 0:
        return f"{' '.join(broker.reload)} exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


def enrollments(db: Session, store: str, door: str) -> list[Enrollment]:
    return list(db.execute(select(Enrollment).where(Enrollment.store == store, Enrollment.door == door)
                           .order_by(Enrollment.id.desc())).scalars())

