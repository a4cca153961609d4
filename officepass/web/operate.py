"""What an operator does from the console: acknowledge an alarm, check a member out by hand (with a
reason, recorded with who did it and the door's answer), add and disable members."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from officepass.alarms import acknowledge
from officepass.members import MemberProblem, add_member, disable_committed
from officepass.models import DoorRecord, EventRecord, LiveSession, ManualCheckout, StoreRecord
from officepass.notifier import Change
from officepass.web.guard import DB, Operator, check_csrf
from officepass.web.words import ServiceReason
from wire.vocab import Act, EventType

log = logging.getLogger("officepass.console")
router = APIRouter(prefix="/console", dependencies=[Depends(check_csrf)])


def _back(request: Request, anchor: str = "") -> RedirectResponse:
    """Committed: every open console (of every instance) hears of it, and this one goes back."""
    request.app.state.notifier.changed({Change.CONSOLE})
    return RedirectResponse(f"/console{anchor}", status_code=303)


@router.post("/alarms/{alarm_id}/ack")
def ack_alarm(request: Request, alarm_id: int, user: Operator, session: DB) -> RedirectResponse:
    if not acknowledge(session, alarm_id, user.id, datetime.now(UTC)):
        raise HTTPException(404, f"no alarm {alarm_id} waiting for acknowledgement")
    session.commit()
    return _back(request, "#alarms")


def _session_door(session: DB, record: StoreRecord, member: str) -> str:
    """The door that checked the member in (it keeps the session); without its event yet, an
    online door of the store, else its first."""
    checked_in = session.execute(
        select(EventRecord.door).filter_by(store=record.id, member=member, type=EventType.CHECK_IN)
        .order_by(EventRecord.ts.desc()).limit(1)).scalar_one_or_none()
    names: list[str] = list(record.doors.get("names", []))
    if checked_in in names:
        return str(checked_in)
    online = set(session.execute(select(DoorRecord.door).filter_by(store=record.id, online=True)).scalars())
    return next((name for name in names if name in online), names[0])


@router.post("/checkout")
def manual_checkout(request: Request, store: Annotated[str, Form()], member: Annotated[str, Form()],
                    reason: Annotated[str, Form()], user: Operator, session: DB) -> RedirectResponse:
    """The member left without checking out (a dead phone, say): the door is told to close the
    session, as the member's own チェックアウトする would."""
    reason = reason.strip()
    if not reason:
        raise HTTPException(400, "say why: the reason is recorded with the checkout")
    record = session.get(StoreRecord, store)
    if record is None or session.get(LiveSession, (store, member)) is None:
        raise HTTPException(404, f"no live session of {member!r} at {store!r}")
    command = request.app.state.keys.command(member, Act.CHECKOUT, store)
    door = _session_door(session, record, member)
    reply = request.app.state.link.send(store, door, command)
    # What is recorded: the door's own answer, or the service's no_answer (never passed off as the door's).
    answer = (json.loads(reply.to_json()) if reply is not None
              else {"ok": False, "reason": ServiceReason.NO_ANSWER.value})
    session.add(ManualCheckout(store=store, door=door, member=member, operator=user.id, reason=reason,
                               at=datetime.now(UTC), answer=answer))
    session.commit()
    log.info("manual checkout of %s at %s by %s: %s", member, store, user.id, answer)
    if not answer["ok"]:
        raise HTTPException(502, f"the door did not check {member} out: {answer['reason']}")
    return _back(request, "#sessions")


@router.post("/members")
def new_member(request: Request, member: Annotated[str, Form()], name: Annotated[str, Form()],
               password: Annotated[str, Form()], user: Operator, session: DB,
               role: Annotated[str, Form()] = "member") -> RedirectResponse:
    try:
        add_member(session, member.strip(), name.strip() or member.strip(), password, role=role)
        session.commit()
    except MemberProblem as exc:
        raise HTTPException(400, str(exc)) from None
    return _back(request, "#members")


@router.post("/members/{member_id}/disable")
def disable(request: Request, member_id: str, user: Operator) -> RedirectResponse:
    try:
        # Committed with its list's version; the publisher sends it after the commit (and again
        # until the broker takes it), so the disable never waits on the broker.
        disable_committed(request.app.state.sessions, member_id)
    except MemberProblem as exc:
        raise HTTPException(404, str(exc)) from None
    request.app.state.revocations.nudge()
    return _back(request, "#members")
