"""`POST /enroll/v1` (contract §11): a door trades its one-time code for its identity.

No cookie, no form: the code is the credential, so there is no CSRF to forge. JSON in, JSON out
(`wire.fleet`); every refusal names its reason and says what to do; failed attempts are limited per
client address (a code has 100 random bits, the limit keeps the log quiet).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from officepass.enrollment import EnrollPlace, EnrollProblem, redeem, reload_broker
from officepass.web.guard import AttemptLimit
from wire.fleet import (
    ENROLL_PATH,
    MAX_ENROLL_BYTES,
    EnrollError,
    EnrollGrant,
    EnrollRefusal,
    EnrollRequest,
    FleetWireError,
)

log = logging.getLogger("officepass.enroll")
router = APIRouter()
FAILURES_PER_MINUTE = 10
STATUS = {EnrollError.UNKNOWN_CODE: 404, EnrollError.USED_CODE: 409, EnrollError.EXPIRED_CODE: 410,
          EnrollError.BAD_REQUEST: 400, EnrollError.NOT_READY: 503}


def _refuse(error: EnrollError, detail: str, status: int | None = None) -> Response:
    return Response(EnrollRefusal(error, detail).to_json(), status_code=status or STATUS[error],
                    media_type="application/json", headers={"Cache-Control": "no-store"})


@router.post(ENROLL_PATH)
async def enroll(request: Request) -> Response:
    place: EnrollPlace | None = request.app.state.enroll
    limit: AttemptLimit = request.app.state.enroll_limit
    peer = request.client.host if request.client else "unknown"
    if place is None:
        return _refuse(EnrollError.NOT_READY, "this service hands out no identities: its settings have no "
                       "[broker] section")
    if limit.blocked(peer):
        return _refuse(EnrollError.BAD_REQUEST, "too many failed enrollments from this address: wait a "
                       "minute", 429)
    body = await request.body()
    if len(body) > MAX_ENROLL_BYTES:
        return _refuse(EnrollError.BAD_REQUEST, f"the request is over {MAX_ENROLL_BYTES} bytes", 413)
    try:
        asked = EnrollRequest.from_json(body)
    except FleetWireError as exc:
        limit.count(peer)
        return _refuse(EnrollError.BAD_REQUEST, str(exc))
    sessions = request.app.state.sessions

    def redeem_now() -> EnrollGrant:
        with sessions.begin() as db:
            return redeem(db, asked, place, peer)

    try:
        grant = await run_in_threadpool(redeem_now)
    except EnrollProblem as exc:
        limit.count(peer)
        log.warning("enrollment from %s refused: %s (%s)", peer, exc.error, exc)
        return _refuse(exc.error, str(exc))
    problem = await run_in_threadpool(reload_broker, place.broker)
    if problem is not None:
        # The identity is stored and handed out; the broker takes it at its next reload.
        log.error("enrolled %s/%s but the broker was not reloaded: %s", grant.store, grant.door, problem)
    return Response(grant.to_json(), media_type="application/json", headers={"Cache-Control": "no-store"})
