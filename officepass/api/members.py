"""POST /api/v1/members, .../disable, .../enable: a membership platform keeps its members here
(scope `members`). A disable ends the member's logins and publishes a newer revocation list, as the
console's does; operators' accounts are the console's alone."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from officepass.api.deps import AUTH_ERRORS, DB, MembersToken
from officepass.api.errors import ApiError, ErrorBody
from officepass.api.schema import MEMBER_PATTERN, MemberIn, MemberOut
from officepass.feed import utc_text
from officepass.members import (
    MemberExists,
    MemberProblem,
    add_member,
    disable_committed,
    enable_committed,
)
from officepass.models import Member
from officepass.notifier import Change

router = APIRouter(prefix="/members", tags=["members"])
MemberId = Annotated[str, Path(pattern=MEMBER_PATTERN)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no such member"}}


def _out(member: Member) -> MemberOut:
    return MemberOut(id=member.id, name=member.name, disabled=member.disabled,
                     created=utc_text(member.created))


@router.post("", status_code=201, response_model=MemberOut,
             responses={**AUTH_ERRORS, 409: {"model": ErrorBody, "description": "the id is taken"}})
def create(request: Request, body: MemberIn, db: DB, _token: MembersToken) -> JSONResponse:
    try:
        member = add_member(db, body.id, body.name, body.password)
    except MemberExists as exc:
        raise ApiError(409, str(exc)) from None
    except MemberProblem as exc:
        raise ApiError(422, str(exc)) from None
    db.commit()
    request.app.state.notifier.changed({Change.CONSOLE})
    return JSONResponse(_out(member).model_dump(), status_code=201,
                        headers={"Location": f"/api/v1/members/{member.id}"})


def _member(db: DB, member_id: str) -> Member:
    member = db.get(Member, member_id)
    if member is None:
        raise ApiError(404, f"no member {member_id!r}")
    if member.role != "member":
        raise ApiError(403, f"{member_id!r} is an operator: operators are managed in the console")
    return member


@router.post("/{member_id}/disable", response_model=MemberOut, responses={**AUTH_ERRORS, **NOT_FOUND})
def disable(request: Request, member_id: MemberId, db: DB, _token: MembersToken) -> MemberOut:
    """The member's codes stop opening doors (a newer revocation list) and their logins end. Asking
    again changes nothing."""
    return _set_disabled(request, db, member_id, True)


@router.post("/{member_id}/enable", response_model=MemberOut, responses={**AUTH_ERRORS, **NOT_FOUND})
def enable(request: Request, member_id: MemberId, db: DB, _token: MembersToken) -> MemberOut:
    """The member's codes open doors again (a newer revocation list without them)."""
    return _set_disabled(request, db, member_id, False)


def _set_disabled(request: Request, db: DB, member_id: str, disabled: bool) -> MemberOut:
    member = _member(db, member_id)
    if member.disabled == disabled:  # already so: no newer list
        return _out(member)
    db.rollback()  # the change commits in a transaction of its own (its list's version)
    (disable_committed if disabled else enable_committed)(request.app.state.sessions, member_id)
    request.app.state.revocations.nudge()
    request.app.state.notifier.changed({Change.CONSOLE})
    return _out(_member(db, member_id))
