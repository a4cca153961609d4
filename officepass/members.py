"""Members and stores: accounts with argon2 password hashes, disabling (which makes a newer
revocation list), and the stores the member app lists."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from officepass.models import Member, Revocation, StoreRecord, WebSession
from wire.codes import MEMBER_RE

ROLES = ("member", "operator")
STORE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_hasher = PasswordHasher()


class MemberProblem(ValueError):
    """Why a member or store cannot be made or changed."""


# The hash of a member who logs in elsewhere (a membership platform that made them through the API):
# no password verifies against it (argon2 refuses it as a hash), so this app's login never opens.
NO_PASSWORD = "!elsewhere"
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte of password is only work for the server


class MemberExists(MemberProblem):
    """The id is taken."""


def add_member(db: Session, member_id: str, name: str, password: str | None, role: str = "member") -> Member:
    """A new member; `password` None for one who logs in elsewhere (the API's members without one)."""
    if not MEMBER_RE.fullmatch(member_id):
        raise MemberProblem(f"member id {member_id!r} must be 1-64 characters of A-Za-z0-9._-")
    if role not in ROLES:
        raise MemberProblem(f"role must be one of {', '.join(ROLES)}")
    if password is not None and not 8 <= len(password) <= MAX_PASSWORD:
        raise MemberProblem(f"the password must be 8 to {MAX_PASSWORD} characters")
    name = name.strip()
    if not name or len(name) > 200:
        raise MemberProblem("the name must be 1-200 characters")
    if db.get(Member, member_id) is not None:
        raise MemberExists(f"member {member_id!r} exists already")
    password_hash = NO_PASSWORD if password is None else _hasher.hash(password)
    member = Member(id=member_id, name=name, password_hash=password_hash, role=role, disabled=False,
                    created=datetime.now(UTC))
    db.add(member)
    return member


def check_password(db: Session, member_id: str, password: str) -> Member | None:
    """The member when the password is theirs and the account is enabled; else None."""
    member = db.get(Member, member_id)
    if member is None:
        _hasher.hash(password)  # the same work as a known member: no timing hint of who exists
        return None
    try:
        _hasher.verify(member.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return None if member.disabled else member


def disable_member(db: Session, member_id: str) -> Revocation:
    """Disable a member and record the revocation list that now holds every disabled member,
    with a version above every earlier one (the caller publishes it)."""
    member = db.get(Member, member_id)
    if member is None:
        raise MemberProblem(f"no member {member_id!r}")
    member.disabled = True
    end_web_sessions(db, member_id)
    return _new_list(db)


def enable_member(db: Session, member_id: str) -> Revocation:
    """Enable a disabled member again: a newer list without them (doors honour the newest)."""
    member = db.get(Member, member_id)
    if member is None:
        raise MemberProblem(f"no member {member_id!r}")
    member.disabled = False
    return _new_list(db)


def _new_list(db: Session) -> Revocation:
    db.flush()
    # The newest version first, then who is disabled: any disable committed before that version was
    # read is then in the list too, so the list with the highest version never misses one (a disable
    # committed in between takes the same version and makes this one conflict and try again).
    newest = db.execute(select(func.max(Revocation.version))).scalar_one_or_none() or 0
    ids = sorted(db.execute(select(Member.id).where(Member.disabled)).scalars())
    revocation = Revocation(version=newest + 1, members={"ids": ids}, published=datetime.now(UTC))
    db.add(revocation)
    return revocation


def disable_committed(sessions: Callable[[], Session], member_id: str, attempts: int = 8) -> Revocation:
    return changed_committed(sessions, disable_member, member_id, attempts)


def enable_committed(sessions: Callable[[], Session], member_id: str, attempts: int = 8) -> Revocation:
    return changed_committed(sessions, enable_member, member_id, attempts)


def changed_committed(sessions: Callable[[], Session], change: Callable[[Session, str], Revocation],
                      member_id: str, attempts: int = 8) -> Revocation:
    """Disable or enable a member in a transaction of its own, the list's version taken inside it. Two changes
    at once (PostgreSQL, two instances) both read the same newest version: the second to commit
    conflicts on the version's key and is tried again, so each gets its own version. The list is
    published after the commit (officepass.revocations)."""
    for attempt in range(attempts):
        try:
            with sessions() as db, db.begin():
                return change(db, member_id)
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def end_web_sessions(db: Session, member_id: str) -> None:
    """Every login of the member ends now (a disable, a password change)."""
    db.execute(update(WebSession).where(WebSession.member == member_id, WebSession.ended.is_(None))
               .values(ended=datetime.now(UTC)))


def add_store(
    db: Session, store_id: str, name: str, doors: list[str], areas: str = "", rules: str = ""
) -> None:
    if not STORE_RE.fullmatch(store_id) or not all(STORE_RE.fullmatch(d) for d in doors) or not doors:
        raise MemberProblem("store and door ids are 1-64 characters of A-Za-z0-9._-, and a store has a door")
    if db.get(StoreRecord, store_id) is not None:
        raise MemberProblem(f"store {store_id!r} exists already")
    db.add(StoreRecord(id=store_id, name=name, doors={"names": doors}, areas=areas, rules=rules))
