"""What an operator does from the console: acknowledge an alarm, check a member out by hand (with a
reason, recorded with who did it and the door's answer), add and disable members."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from controller.vocab import Act
from officepass.alarms import acknowledge
from officepass.members import MemberProblem, add_member, disable_and_publish
from officepass.models import LiveSession, ManualCheckout, StoreRecord
from officepass.web.guard import DB, Operator, check_csrf

log = logging.getLogger("officepass.console")
router = APIRouter(prefix="/console", dependencies=[Depends(check_csrf)])
NO_ANSWER = {"ok": False, "reason": "no_answer"}


def _back(anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/console{anchor}", status_code=303)


@router.post("/alarms/{alarm_id}/ack")
def ack_alarm(alarm_id: int, user: Operator, session: DB) -> RedirectResponse:
    if not acknowledge(session, alarm_id, user.id, datetime.now(UTC)):
        raise HTTPException(404, f"no alarm {alarm_id} waiting for acknowledgement")
    session.commit()
    return _back("#alarms")


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
    door = record.doors["names"][0]
    answer = request.app.state.link.send(store, door, command) or NO_ANSWER
    session.add(ManualCheckout(store=store, door=door, member=member, operator=user.id, reason=reason,
                               at=datetime.now(UTC), answer=answer))
    session.commit()
    log.info("manual checkout of %s at %s by %s: %s", member, store, user.id, answer)
    if not answer.get("ok"):
        raise HTTPException(502, f"the door did not check {member} out: {answer.get('reason')}")
    return _back("#sessions")


@router.post("/members")
def new_member(member: Annotated[str, Form()], name: Annotated[str, Form()], password: Annotated[str, Form()],
               user: Operator, session: DB, role: Annotated[str, Form()] = "member") -> RedirectResponse:
    try:
        add_member(session, member.strip(), name.strip() or member.strip(), password, role=role)
        session.commit()
    except MemberProblem as exc:
        raise HTTPException(400, str(exc)) from None
    return _back("#members")


@router.post("/members/{member_id}/disable")
def disable(request: Request, member_id: str, user: Operator, session: DB) -> RedirectResponse:
    keys, link = request.app.state.keys, request.app.state.link
    try:
        # Published before the commit; the session is rolled back if the broker refuses it.
        disable_and_publish(session, member_id,
                            lambda version, ids: link.publish_revocation(keys.revocation(version, ids)))
        session.commit()
    except MemberProblem as exc:
        raise HTTPException(404, str(exc)) from None
    except RuntimeError as exc:  # the broker did not take the list: nothing changed
        raise HTTPException(503, f"{exc}; the member stays enabled") from None
    return _back("#members")
