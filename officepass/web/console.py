"""The operator console: doors online or not, seats, live sessions (with the manual checkout), alarms
(with acknowledgement), the event log with filters and seq-gap marks, members. The page reloads its
tables when `/live/console` says something changed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from officepass.alarms import needing_attention
from officepass.models import (
    AlarmRecord,
    DoorRecord,
    EventRecord,
    LiveSession,
    ManualCheckout,
    Member,
    SeqGap,
    SeqLost,
    StoreRecord,
    StoreSeats,
    time_bound,
)
from officepass.web.fleet_ops import config_context
from officepass.web.guard import DB, Operator
from officepass.web.pages import render
from wire.payloads import SessionInfo
from wire.rules import parse_rfc3339
from wire.vocab import EventType

router = APIRouter()
EVENT_ROWS = 100  # events to a page, newest first
DOOR_ROWS = 50  # doors to a page: a fleet of hundreds pages through them (or searches)
MEMBER_ROWS = 50
PAGE_RE = re.compile(r"[0-9]{1,6}")
FILTERS = ("store", "door", "type", "member")
HOURS_RE = re.compile(r"[0-9]{1,6}")  # ASCII digits only ("²" is a digit to str.isdigit)
MAX_HOURS = 24 * 366


def overdue(session: SessionInfo | None, now: datetime) -> bool:
    """The door marks a session overdue at its deadline; between the door's messages, the console
    tells from the deadline itself."""
    if session is None:
        return False
    return session.overdue or parse_rfc3339(session.deadline) < now


def two_controllers(doors: Sequence[DoorRecord]) -> dict[str, list[str]]:
    """Stores with more than one door controller online: a misconfiguration (contract §4, one
    controller per store), shown to the operator, never merged."""
    online: dict[str, list[str]] = {}
    for door in doors:
        if door.online:
            online.setdefault(door.store, []).append(door.door)
    return {store: names for store, names in online.items() if len(names) > 1}


@dataclass(frozen=True)
class Paged:
    """One page of a table and how to reach the others (links keep every other parameter)."""

    rows: Sequence[Any]
    number: int
    pages: int
    total: int
    name: str  # its query parameter: `{name}_page`
    query: tuple[tuple[str, str], ...]

    def link(self, number: int) -> str:
        kept = [(k, v) for k, v in self.query if k != f"{self.name}_page"]
        return "?" + urlencode([*kept, (f"{self.name}_page", str(number))])


def page_number(request: Request, name: str) -> int:
    raw = request.query_params.get(f"{name}_page", "1").strip() or "1"
    if not PAGE_RE.fullmatch(raw) or int(raw) < 1:
        raise HTTPException(422, f"{name}_page must be a page number from 1")
    return int(raw)


def paged(session: Session, request: Request, name: str, query: Select[Any], rows: int) -> Paged:
    """The page of `query` the URL asks for (`{name}_page`), `rows` to a page."""
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    total = int(session.execute(counted).scalar_one())
    pages = max(1, -(-total // rows))
    number = min(page_number(request, name), pages)
    found = session.execute(query.limit(rows).offset((number - 1) * rows)).scalars().all()
    return Paged(found, number, pages, total, name, tuple(request.query_params.multi_items()))


def event_filters(request: Request, now: datetime) -> tuple[dict[str, str], Select[Any]]:
    """The event log's filters from the URL (store, door, type, member, last hours) and its query."""
    chosen = {key: value for key in FILTERS if (value := request.query_params.get(key, "").strip())}
    for key in FILTERS:  # ids and types are short text; anything else is no filter anyone meant
        if key in chosen and len(chosen[key]) > 64:
            raise HTTPException(422, f"{key} is at most 64 characters")
    events = select(EventRecord).filter_by(**chosen)
    if since := request.query_params.get("hours", "").strip():
        if not HOURS_RE.fullmatch(since) or not 1 <= int(since) <= MAX_HOURS:
            raise HTTPException(422, f"hours must be a whole number of hours from 1 to {MAX_HOURS}")
        events = events.where(EventRecord.ts >= time_bound(now - timedelta(hours=int(since))))
        chosen["hours"] = since
    return chosen, events.order_by(EventRecord.ts.desc(), EventRecord.seq.desc())


def _text_filter(request: Request, key: str) -> str:
    value = request.query_params.get(key, "").strip()
    if len(value) > 64:
        raise HTTPException(422, f"{key} is at most 64 characters")
    return value


@router.get("/console", response_class=HTMLResponse)
def console(request: Request, user: Operator, session: DB) -> Response:
    now = datetime.now().astimezone()
    chosen, events = event_filters(request, now)
    where = {k: v for k, v in chosen.items() if k in ("store", "door")}
    door_q, member_q = _text_filter(request, "door_q"), _text_filter(request, "member_q")
    doors = select(DoorRecord).order_by(DoorRecord.store, DoorRecord.door)
    if door_q:
        doors = doors.where(or_(DoorRecord.store.contains(door_q, autoescape=True),
                                DoorRecord.door.contains(door_q, autoescape=True)))
    members = select(Member).order_by(Member.role, Member.id)
    if member_q:
        members = members.where(or_(Member.id.contains(member_q, autoescape=True),
                                    Member.name.contains(member_q, autoescape=True)))
    online = session.execute(select(DoorRecord).where(DoorRecord.online)).scalars().all()
    gaps = select(SeqGap).filter_by(**where)
    context = {
        "user": user,
        "filters": chosen,
        "door_q": door_q,
        "member_q": member_q,
        "alarms": needing_attention(session),
        "doors": paged(session, request, "doors", doors, DOOR_ROWS),
        "controllers": two_controllers(online),
        "seats": session.execute(select(StoreSeats).order_by(StoreSeats.store)).scalars().all(),
        "sessions": [(s, s.value, overdue(s.value, now)) for s in session.execute(
            select(LiveSession).order_by(LiveSession.store, LiveSession.member)).scalars()],
        "events": paged(session, request, "events", events, EVENT_ROWS),
        "gaps": session.execute(gaps.order_by(SeqGap.store, SeqGap.door, SeqGap.first)).scalars().all(),
        "lost": session.execute(select(SeqLost).filter_by(**where).order_by(SeqLost.store, SeqLost.door,
                                                                             SeqLost.first)).scalars().all(),
        "members": paged(session, request, "members", members, MEMBER_ROWS),
        "checkouts": session.execute(select(ManualCheckout).order_by(ManualCheckout.id.desc()).limit(20))
        .scalars().all(),
        "types": [t.value for t in EventType],
    }
    return render(request, "console.html", context)


@router.get("/console/stores/{store}", response_class=HTMLResponse)
def store_page(request: Request, store: str, user: Operator, session: DB) -> Response:
    """One store: its doors and their status, seats, who is inside, its alarms and its events."""
    return _place(request, user, session, store, None)


@router.get("/console/doors/{store}/{door}", response_class=HTMLResponse)
def door_page(request: Request, store: str, door: str, user: Operator, session: DB) -> Response:
    """One door: its whole status (readers, clock, versions), gaps and lost ranges, alarms, events."""
    return _place(request, user, session, store, door)


def _place(request: Request, user: Member, session: Session, store: str, door: str | None) -> Response:
    record = session.get(StoreRecord, store)
    if record is None or (door is not None and door not in record.doors.get("names", [])):
        raise HTTPException(404, f"no door {store}/{door}" if door else f"no store {store}")
    now = datetime.now().astimezone()
    chosen, events = event_filters(request, now)
    place = {"store": store, **({"door": door} if door else {})}
    events = events.filter_by(**place)
    alarms = (select(AlarmRecord).filter_by(**place)
              .order_by(AlarmRecord.cleared.is_not(None), AlarmRecord.raised.desc()))
    context = {
        "user": user, "record": record, "door": door, "filters": chosen,
        "types": [t.value for t in EventType],
        "doors": session.execute(select(DoorRecord).filter_by(**place).order_by(DoorRecord.door))
        .scalars().all(),
        "seats": session.get(StoreSeats, store),
        "sessions": [(s, s.value, overdue(s.value, now)) for s in session.execute(
            select(LiveSession).filter_by(store=store).order_by(LiveSession.member)).scalars()],
        "alarms": session.execute(alarms.limit(50)).scalars().all(),
        "gaps": session.execute(select(SeqGap).filter_by(**place).order_by(SeqGap.door, SeqGap.first))
        .scalars().all(),
        "lost": session.execute(select(SeqLost).filter_by(**place).order_by(SeqLost.door, SeqLost.first))
        .scalars().all(),
        "events": paged(session, request, "events", events, EVENT_ROWS),
        **(config_context(session, store, door) if door is not None else {}),
    }
    return render(request, "console_place.html", context)
