"""The operator console: doors online or not, seats, live sessions, events with their seq gaps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from officepass.models import DoorRecord, EventRecord, LiveSession, SeqGap, StoreSeats
from officepass.web.guard import DB, Operator
from officepass.web.pages import render

router = APIRouter()


@router.get("/console", response_class=HTMLResponse)
def console(request: Request, user: Operator, session: DB) -> Response:
    context = {
        "user": user,
        "doors": session.execute(select(DoorRecord).order_by(DoorRecord.store, DoorRecord.door))
        .scalars().all(),
        "seats": session.execute(select(StoreSeats).order_by(StoreSeats.store)).scalars().all(),
        "sessions": session.execute(select(LiveSession).order_by(LiveSession.store)).scalars().all(),
        "events": session.execute(select(EventRecord).order_by(EventRecord.ts.desc(),
                                                               EventRecord.seq.desc()).limit(100)).scalars().all(),
        "gaps": session.execute(select(SeqGap)).scalars().all(),
    }
    return render(request, "console.html", context)
