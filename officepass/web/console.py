"""The operator console: doors online or not, seats, live sessions (with the manual checkout), alarms
(with acknowledgement), the event log with filters and seq-gap marks, members. The page reloads its
tables when `/live/console` says something changed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from officepass.alarms import needing_attention
from officepass.models import (
    DoorRecord,
    EventRecord,
    LiveSession,
    ManualCheckout,
    Member,
    SeqGap,
    SeqLost,
    StoreSeats,
)
from officepass.web.guard import DB, Operator
from officepass.web.pages import render
from wire.payloads import SessionInfo
from wire.rules import parse_rfc3339

router = APIRouter()
EVENT_ROWS = 200  # the newest events matching the filters
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


@router.get("/console", response_class=HTMLResponse)
def console(request: Request, user: Operator, session: DB) -> Response:
    now = datetime.now().astimezone()
    chosen = {key: value for key in FILTERS if (value := request.query_params.get(key, "").strip())}
    events = select(EventRecord).filter_by(**chosen)
    if since := request.query_params.get("hours", "").strip():
        if not HOURS_RE.fullmatch(since) or not 1 <= int(since) <= MAX_HOURS:
            raise HTTPException(422, f"hours must be a whole number of hours from 1 to {MAX_HOURS}")
        events = events.where(EventRecord.ts >= now - timedelta(hours=int(since)))
        chosen["hours"] = since
    for key in FILTERS:  # ids and types are short text; anything else is no filter anyone meant
        if key in chosen and len(chosen[key]) > 64:
            raise HTTPException(422, f"{key} is at most 64 characters")
    doors = session.execute(select(DoorRecord).order_by(DoorRecord.store, DoorRecord.door)).scalars().all()
    where = {k: v for k, v in chosen.items() if k in ("store", "door")}
    gaps = select(SeqGap).filter_by(**where)
    context = {
        "user": user,
        "filters": chosen,
        "alarms": needing_attention(session),
        "doors": doors,
        "controllers": two_controllers(doors),
        "seats": session.execute(select(StoreSeats).order_by(StoreSeats.store)).scalars().all(),
        "sessions": [(s, s.value, overdue(s.value, now)) for s in session.execute(
            select(LiveSession).order_by(LiveSession.store, LiveSession.member)).scalars()],
        "events": session.execute(events.order_by(EventRecord.ts.desc(), EventRecord.seq.desc())
                                  .limit(EVENT_ROWS)).scalars().all(),
        "gaps": session.execute(gaps.order_by(SeqGap.store, SeqGap.door, SeqGap.first)).scalars().all(),
        "lost": session.execute(select(SeqLost).filter_by(**where).order_by(SeqLost.store, SeqLost.door,
                                                                             SeqLost.first)).scalars().all(),
        "members": session.execute(select(Member).order_by(Member.role, Member.id)).scalars().all(),
        "checkouts": session.execute(select(ManualCheckout).order_by(ManualCheckout.id.desc()).limit(20))
        .scalars().all(),
        "types": sorted(session.execute(select(EventRecord.type).distinct()).scalars()),
    }
    return render(request, "console.html", context)
