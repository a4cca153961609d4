"""A door's page (the QR by the door leads here, contract §8), its buttons, and the member's code."""

from __future__ import annotations

import base64
import io
import re
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from officepass.models import LiveSession, Member, StoreRecord, StoreSeats
from officepass.web.guard import DB, AttemptLimit, CurrentMember, check_csrf
from officepass.web.pages import render
from officepass.web.words import (
    DONE,
    REFUSED,
    REFUSED_OTHER,
    SCAN,
    TOO_MANY_PRESSES,
    TROUBLE,
    ServiceReason,
)
from wire.codes import MAX_PRESENCE_CHARS
from wire.payloads import Seats, SessionInfo
from wire.rules import DEFAULT_SESSION_LIMIT_MINUTES, parse_rfc3339
from wire.vocab import Act, Deny, SessionState

router = APIRouter()
PRESENCE_RE = re.compile(rf"[A-Za-z0-9]{{1,{MAX_PRESENCE_CHARS}}}")
# Acts after which the door's lock must move: the page then watches for an unlock_fault.
OPENING = frozenset({Act.CHECK_IN, Act.UNLOCK})


def _store(session: Session, store: str, door: str) -> StoreRecord:
    record = session.get(StoreRecord, store)
    if record is None or door not in record.doors.get("names", []):
        raise HTTPException(404, "no such door")
    return record


def _buttons(live: SessionInfo | None) -> list[Act]:
    """The guide's buttons for where the member stands."""
    if live is None:
        return [Act.CHECK_IN]
    if live.state is SessionState.CHECKING_OUT:
        return [Act.UNLOCK, Act.CHECKOUT]
    return [Act.UNLOCK, Act.CHECKOUT_BEGIN]


def _limit_minutes(seats: Seats | None, live: SessionInfo | None) -> int:
    """The door's own stay limit: from its seats, else from the member's session, else the default."""
    if seats is not None and seats.limit_minutes is not None:
        return seats.limit_minutes
    if live is not None:
        span = parse_rfc3339(live.deadline) - parse_rfc3339(live.checked_in_at)
        return max(1, round(span.total_seconds() / 60))
    return DEFAULT_SESSION_LIMIT_MINUTES


def _over_limit(request: Request, limit: AttemptLimit, user: Member, record: StoreRecord,
                door: str) -> Response | None:
    """The guide-style 429 when the member is over `limit` (presses, shown codes); else counts one."""
    if limit.blocked(user.id):
        context = {"user": user, "store": record, "door": door, "ok": False,
                   "shown": ServiceReason.TOO_MANY_PRESSES}
        return render(request, "result.html", {**context, "message": TOO_MANY_PRESSES}, 429)
    limit.count(user.id)
    return None


def _presence(pc: str) -> str | None:
    """A presence code from the door's QR (§9), passed on as it came; anything else is dropped."""
    return pc if PRESENCE_RE.fullmatch(pc) else None


@router.get("/s/{store}/{door}", response_class=HTMLResponse)
def door_page(
    request: Request, store: str, door: str, user: CurrentMember, session: DB, pc: str = ""
) -> Response:
    record = _store(session, store, door)
    row = session.get(LiveSession, (store, user.id))
    live = row.value if row is not None else None
    seats_row = session.get(StoreSeats, store)
    seats = seats_row.value if seats_row is not None else None
    context = {"user": user, "store": record, "door": door, "buttons": _buttons(live), "live": live,
               "symbol": seats.symbol if seats else None, "limit": _limit_minutes(seats, live),
               "pc": _presence(pc)}
    return render(request, "door.html", context)


@router.post("/s/{store}/{door}/act", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
def press(request: Request, store: str, door: str, act: Annotated[str, Form()], user: CurrentMember,
          session: DB, pc: Annotated[str, Form()] = "") -> Response:
    record = _store(session, store, door)
    try:
        chosen = Act(act)
    except ValueError:
        raise HTTPException(400, f"unknown button {act!r}") from None
    refused = _over_limit(request, request.app.state.press_limit, user, record, door)
    if refused is not None:
        return refused
    command = request.app.state.keys.command(user.id, chosen, store, presence=_presence(pc))
    answer = request.app.state.link.send(store, door, command)  # the door's own answer, never a guess
    context = {"user": user, "store": record, "door": door, "act": chosen}
    if answer is None:  # no answer in time: the guide's unlock-trouble screen
        return render(request, "trouble.html", {**context, **_trouble(request, chosen),
                                                "shown": ServiceReason.NO_ANSWER}, 504)
    if answer.ok:
        # The door answered before its bolt check (1 s): the page keeps watching the door's alarms,
        # and an unlock_fault there turns it into the unlock-trouble screen.
        return render(request, "result.html", {**context, "ok": True, "shown": answer.result,
                                               "message": DONE[chosen], "watch": chosen in OPENING})
    reason = answer.reason
    message = REFUSED.get(reason, REFUSED_OTHER) if reason is not None else REFUSED_OTHER
    return render(request, "result.html", {**context, "ok": False, "shown": reason, "message": message,
                                           "rescan": reason is Deny.NOT_PRESENT}, 409)


@router.get("/code")
def choose_a_store(user: CurrentMember) -> RedirectResponse:
    """A code is for one store (contract §8 `st`): it is shown from that store's door page."""
    return RedirectResponse("/", status_code=303)


@router.get("/s/{store}/{door}/code", response_class=HTMLResponse)
def my_code(request: Request, store: str, door: str, user: CurrentMember, session: DB) -> Response:
    """The member's one-time code for this store's door camera (valid only here, `st`), a new one
    before the old one expires; limited per member like presses."""
    record = _store(session, store, door)
    refused = _over_limit(request, request.app.state.code_limit, user, record, door)
    if refused is not None:
        return refused
    text = request.app.state.keys.member_code(user.id, stores=[store])
    png = io.BytesIO()
    segno.make_qr(text, error="m").save(png, kind="png", scale=6, border=4)
    return render(request, "code.html", {"user": user, "store": record, "door": door, "refresh": 45,
                                         "png": base64.b64encode(png.getvalue()).decode()})


def _trouble(request: Request, act: Act | None) -> dict[str, object]:
    """The guide's advice for where the member is: entering (a check-in), leaving (a checkout), or,
    for 開錠する (out for a while or back in), both; with the office's mail and the support number."""
    situations = {Act.CHECK_IN: ("entering",), Act.CHECKOUT_BEGIN: ("leaving",), Act.CHECKOUT: ("leaving",)}
    return {"trouble": TROUBLE, "situations": situations.get(act, ("entering", "leaving")) if act else
            ("entering", "leaving"), "contact": request.app.state.contact}


@router.get("/s/{store}/{door}/trouble", response_class=HTMLResponse)
def trouble(request: Request, store: str, door: str, user: CurrentMember, session: DB,
            act: str = "") -> Response:
    """Where a member's page goes when the door reports an unlock_fault after answering."""
    record = _store(session, store, door)
    chosen = Act(act) if act in Act._value2member_map_ else None
    return render(request, "trouble.html", {"user": user, "store": record, "door": door,
                                            **_trouble(request, chosen)})


@router.get("/scan", response_class=HTMLResponse)
def scan(request: Request, user: CurrentMember) -> Response:
    """The door's QR read in the page by the phone's camera (the vendored jsQR decoder)."""
    return render(request, "scan.html", {"user": user, "scan": SCAN})
