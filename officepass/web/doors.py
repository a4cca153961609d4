"""A door's page (the QR by the door leads here, contract §8), its buttons, and the member's code."""

from __future__ import annotations

import io
import re
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from officepass.models import LiveSession, StoreRecord, StoreSeats
from officepass.web.guard import DB, AttemptLimit, CurrentMember, check_csrf
from officepass.web.pages import render
from officepass.web.words import DONE, REFUSED, REFUSED_OTHER, SCAN, TOO_MANY_PRESSES, TROUBLE
from wire.codes import MAX_PRESENCE_CHARS
from wire.vocab import Act, Deny

router = APIRouter()
PRESENCE_RE = re.compile(rf"[A-Za-z0-9]{{1,{MAX_PRESENCE_CHARS}}}")
# Acts after which the door's lock must move: the page then watches for an unlock_fault.
OPENING = frozenset({Act.CHECK_IN, Act.UNLOCK})


def _store(session: Session, store: str, door: str) -> StoreRecord:
    record = session.get(StoreRecord, store)
    if record is None or door not in record.doors.get("names", []):
        raise HTTPException(404, "no such door")
    return record


def _buttons(live: LiveSession | None) -> list[Act]:
    """The guide's buttons for where the member stands."""
    if live is None:
        return [Act.CHECK_IN]
    if live.session.get("state") == "checking_out":
        return [Act.UNLOCK, Act.CHECKOUT]
    return [Act.UNLOCK, Act.CHECKOUT_BEGIN]


def _presence(pc: str) -> str | None:
    """A presence code from the door's QR (§9), passed on as it came; anything else is dropped."""
    return pc if PRESENCE_RE.fullmatch(pc) else None


@router.get("/s/{store}/{door}", response_class=HTMLResponse)
def door_page(
    request: Request, store: str, door: str, user: CurrentMember, session: DB, pc: str = ""
) -> Response:
    record = _store(session, store, door)
    live = session.get(LiveSession, (store, user.id))
    seats = session.get(StoreSeats, store)
    context = {"user": user, "store": record, "door": door, "buttons": _buttons(live), "live": live,
               "symbol": seats.seats.get("symbol") if seats else None, "pc": _presence(pc)}
    return render(request, "door.html", context)


@router.post("/s/{store}/{door}/act", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
def press(request: Request, store: str, door: str, act: Annotated[str, Form()], user: CurrentMember,
          session: DB, pc: Annotated[str, Form()] = "") -> Response:
    record = _store(session, store, door)
    try:
        chosen = Act(act)
    except ValueError:
        raise HTTPException(400, f"unknown button {act!r}") from None
    limit: AttemptLimit = request.app.state.press_limit
    if limit.blocked(user.id):
        context = {"user": user, "store": record, "door": door, "answer": {"ok": False, "reason": "too_many"}}
        return render(request, "result.html", {**context, "message": TOO_MANY_PRESSES}, 429)
    limit.count(user.id)
    command = request.app.state.keys.command(user.id, chosen, store, presence=_presence(pc))
    answer = request.app.state.link.send(store, door, command)  # the door's own answer, never a guess
    context = {"user": user, "store": record, "door": door, "act": chosen, "answer": answer}
    if answer is None or answer.get("reason") == "unlock_fault":
        status = 504 if answer is None else 502  # no answer in time, or the lock did not move
        return render(request, "trouble.html", {**context, "trouble": TROUBLE}, status)
    if answer.get("ok"):
        # The door answered before its bolt check (1 s): the page keeps watching the door's alarms.
        return render(request, "result.html", {**context, "message": DONE[chosen],
                                               "watch": chosen in OPENING})
    reason = str(answer.get("reason"))
    return render(request, "result.html", {**context, "message": REFUSED.get(reason, REFUSED_OTHER),
                                           "rescan": reason == Deny.NOT_PRESENT}, 409)


@router.get("/code", response_class=HTMLResponse)
def my_code(request: Request, user: CurrentMember) -> Response:
    """The member's one-time code for the door camera: a new one before the old one expires."""
    text = request.app.state.keys.member_code(user.id)
    svg = io.BytesIO()
    segno.make_qr(text, error="m").save(svg, kind="svg", scale=6, border=4)
    return render(request, "code.html", {"user": user, "svg": svg.getvalue().decode(), "refresh": 45})


@router.get("/s/{store}/{door}/trouble", response_class=HTMLResponse)
def trouble(request: Request, store: str, door: str, user: CurrentMember, session: DB) -> Response:
    """Where a member's page goes when the door reports an unlock_fault after answering."""
    record = _store(session, store, door)
    return render(request, "trouble.html", {"user": user, "store": record, "door": door, "trouble": TROUBLE})


@router.get("/scan", response_class=HTMLResponse)
def scan(request: Request, user: CurrentMember) -> Response:
    """The door's QR read in the page by the phone's camera (the vendored jsQR decoder)."""
    return render(request, "scan.html", {"user": user, "scan": SCAN})
