"""The store list with each store's vacancy, as the doors publish it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from officepass.models import StoreRecord, StoreSeats
from officepass.web.guard import DB, CurrentMember
from officepass.web.pages import render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def store_list(request: Request, user: CurrentMember, session: DB) -> Response:
    rows = []
    for store in session.execute(select(StoreRecord).order_by(StoreRecord.name)).scalars():
        row = session.get(StoreSeats, store.id)
        seats = row.value if row is not None else None
        # No seats message yet: the door has not said, so the page does not guess.
        symbol = seats.symbol if seats is not None else None
        rows.append({"store": store, "symbol": symbol, "doors": store.doors.get("names", [])})
    return render(request, "stores.html", {"user": user, "rows": rows})
