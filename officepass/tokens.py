"""API tokens (contract §10): made by an operator (console or `officepass token new`), shown once,
kept as a SHA-256 only, scoped, revocable."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.models import ApiToken, stored_time

PREFIX = "opt"  # officepass token: a secret scanner can tell one from the shape "opt_<id>_<secret>"
TOKEN_RE = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")
USED_EVERY = timedelta(minutes=1)  # how often a token's last use is written (not on every request)


class Scope(StrEnum):
    """What a token may do. Each scope is its own: a membership platform's token that manages members
    cannot read the event log, and a warehouse's reader cannot disable anyone."""

    READ = "read"  # GET: events, doors, stores
    MEMBERS = "members"  # POST: members, their disable and enable


class TokenProblem(ValueError):
    """Why a token cannot be made or revoked."""


@dataclass(frozen=True)
class NewToken:
    record: ApiToken
    token: str  # shown once; only its hash is stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(db: Session, name: str, scope: str, created_by: str) -> NewToken:
    name = name.strip()
    if not name or len(name) > 200:
        raise TokenProblem("a token needs a name of 1-200 characters (what it is for)")
    try:
        chosen = Scope(scope)
    except ValueError:
        raise TokenProblem(f"scope must be one of {', '.join(s.value for s in Scope)}") from None
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    record = ApiToken(id=token_id, name=name, scope=chosen.value, secret_hash=_hash(secret),
                      created=datetime.now(UTC), created_by=created_by)
    db.add(record)
    return NewToken(record, f"{PREFIX}_{token_id}_{secret}")


def token_for(db: Session, presented: str) -> ApiToken | None:
    """The live token that `presented` is, or None (unknown, malformed, revoked)."""
    match = TOKEN_RE.fullmatch(presented)
    if match is None:
        return None
    record = db.get(ApiToken, match.group(1))
    if record is None or record.revoked is not None:
        return None
    if not secrets.compare_digest(record.secret_hash, _hash(match.group(2))):
        return None
    now = datetime.now(UTC)
    if record.last_used is None or now - stored_time(record.last_used) > USED_EVERY:
        record.last_used = now
        db.commit()
    return record


def revoke_token(db: Session, token_id: str) -> ApiToken:
    record = db.get(ApiToken, token_id)
    if record is None:
        raise TokenProblem(f"no token {token_id!r}")
    if record.revoked is None:
        record.revoked = datetime.now(UTC)
    return record


def tokens(db: Session) -> list[ApiToken]:
    return list(db.execute(select(ApiToken).order_by(ApiToken.created)).scalars())
