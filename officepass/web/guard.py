"""What every request may need: the database session, the logged-in member, CSRF, a login limit."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy import update
from sqlalchemy.orm import Session

from officepass.models import Member, WebSession, stored_time

IDLE = timedelta(hours=4)  # a login unused this long ends (a phone left somewhere)
SEEN_EVERY = timedelta(minutes=1)  # how often a login's last use is written
CSRF_KEY = "csrf"
MEMBER_KEY = "sid"  # the cookie holds a login's token; the database, its hash and the member
LANGUAGE_KEY = "lang"
LANGUAGES = ("ja", "en")  # Japanese first (the guide's own); English by the switch


class LoginRequired(Exception):
    """Raised by `member`: the app answers it with a redirect to the login page."""


def db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every form carries it."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session[CSRF_KEY] = token
    return token


def safe_next(target: str) -> str:
    """Only a path of this site: never a redirect to another one."""
    # A browser reads "/\\host" as "//host": another site. Neither may lead away.
    ours = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ours else "/"


def language(request: Request) -> str:
    chosen = request.session.get(LANGUAGE_KEY)
    return chosen if chosen in LANGUAGES else LANGUAGES[0]


def check_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    expected = request.session.get(CSRF_KEY)
    if not isinstance(expected, str) or not secrets.compare_digest(expected, csrf):
        raise HTTPException(403, "the form is stale or was not sent by this site: reload the page")


def session_id(token: str) -> str:
    """What the database keeps of a login's token: its hash (a stolen database opens no session)."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_web_session(request: Request, db_session: Session, member_id: str) -> None:
    """A login: a new server-side session, its token in the cookie, a new CSRF token."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    db_session.add(WebSession(id=session_id(token), member=member_id, created=now, last_seen=now))
    request.session[MEMBER_KEY] = token
    request.session[CSRF_KEY] = secrets.token_urlsafe(24)  # rotated at login


def end_web_session(request: Request, db_session: Session) -> None:
    token = request.session.get(MEMBER_KEY)
    if isinstance(token, str):
        row = db_session.get(WebSession, session_id(token))
        if row is not None and row.ended is None:
            row.ended = datetime.now(UTC)


def member(request: Request, session: Annotated[Session, Depends(db)]) -> Member:
    token = request.session.get(MEMBER_KEY)
    row = session.get(WebSession, session_id(token)) if isinstance(token, str) else None
    now = datetime.now(UTC)
    live = row is not None and row.ended is None and now - stored_time(row.last_seen) < IDLE
    found = session.get(Member, row.member) if live and row is not None else None
    if found is None or found.disabled or row is None:
        request.session.pop(MEMBER_KEY, None)
        raise LoginRequired
    if now - stored_time(row.last_seen) > SEEN_EVERY:  # idle time counts from the last request, roughly
        with request.app.state.sessions.begin() as writer:
            writer.execute(update(WebSession).where(WebSession.id == row.id).values(last_seen=now))
    return found


def member_briefly(request: Request) -> Member:
    """The logged-in member, for a long-lived response (an event stream): the session used for the
    check is closed at once, so an open page never holds one of the pool's connections."""
    with request.app.state.sessions() as session:
        found = member(request, session)
        session.expunge(found)
        return found


def operator_briefly(user: Annotated[Member, Depends(member_briefly)]) -> Member:
    return operator(user)


def operator(user: Annotated[Member, Depends(member)]) -> Member:
    if user.role != "operator":
        raise HTTPException(403, "the console is for operators")
    return user


class AttemptLimit:
    """At most `attempts` counted attempts per key within `window` seconds (monotonic clock): logins
    per client address and per account, button presses per member."""

    def __init__(self, attempts: int, window: float) -> None:
        self.attempts, self.window = attempts, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = self._failures.get(client)
            while recent and now - recent[0] > self.window:
                recent.popleft()
            return recent is not None and len(recent) >= self.attempts

    def count(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(time.monotonic())

    def take(self, key: str) -> float | None:
        """Atomically: a slot for one attempt (its stamp, to `give_back` if it turns out fine), or
        None when the key has used them all. Many attempts at once cannot all pass the check."""
        now = time.monotonic()
        with self._lock:
            recent = self._failures.setdefault(key, deque())
            while recent and now - recent[0] > self.window:
                recent.popleft()
            if len(recent) >= self.attempts:
                return None
            recent.append(now)
            return now

    def give_back(self, key: str, stamp: float) -> None:
        with self._lock:
            recent = self._failures.get(key)
            if recent is not None and stamp in recent:
                recent.remove(stamp)


DB = Annotated[Session, Depends(db)]
CurrentMember = Annotated[Member, Depends(member)]
Operator = Annotated[Member, Depends(operator)]
StreamMember = Annotated[Member, Depends(member_briefly)]
StreamOperator = Annotated[Member, Depends(operator_briefly)]
