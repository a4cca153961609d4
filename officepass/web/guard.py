"""What every request may need: the database session, the logged-in member, CSRF, a login limit."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy.orm import Session

from officepass.models import Member

CSRF_KEY = "csrf"
MEMBER_KEY = "member"
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


def member(request: Request, session: Annotated[Session, Depends(db)]) -> Member:
    member_id = request.session.get(MEMBER_KEY)
    found = session.get(Member, member_id) if isinstance(member_id, str) else None
    if found is None or found.disabled:
        request.session.pop(MEMBER_KEY, None)
        raise LoginRequired
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
    """At most `attempts` counted attempts per key within `window` seconds (monotonic clock): failed
    logins per client address, button presses per member."""

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


DB = Annotated[Session, Depends(db)]
CurrentMember = Annotated[Member, Depends(member)]
Operator = Annotated[Member, Depends(operator)]
StreamMember = Annotated[Member, Depends(member_briefly)]
StreamOperator = Annotated[Member, Depends(operator_briefly)]
