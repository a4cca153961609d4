"""What every API request needs: the database session and the token, with its scope and its rate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from officepass.api.errors import ApiError, ErrorBody
from officepass.models import ApiToken
from officepass.tokens import Scope, token_for
from officepass.web.guard import DB

REQUESTS_PER_MINUTE = 1200  # per token: a platform syncing hard, not a loop gone wrong
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token: `officepass token new NAME --scope read|members`, "
                                "or the console.")

# What any authenticated endpoint may answer besides its success (the OpenAPI document says so).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or one unknown or revoked"},
    403: {"model": ErrorBody, "description": "the token's scope does not allow this"},
    422: {"model": ErrorBody, "description": "a parameter or the body does not fit"},
    429: {"model": ErrorBody, "description": "too many requests with this token: wait and ask again"},
}


def token(scope: Scope) -> Callable[..., ApiToken]:
    def check(request: Request, db: DB,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> ApiToken:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise ApiError(401, "send Authorization: Bearer TOKEN (officepass token new)", headers=challenge)
        record = token_for(db, credentials.credentials)
        if record is None:
            raise ApiError(401, "this token is unknown or revoked", headers=challenge)
        if record.scope != scope.value:
            raise ApiError(403, f"this token's scope is {record.scope}; this needs a {scope.value} token")
        if request.app.state.api_limit.take(record.id) is None:
            raise ApiError(429, f"more than {REQUESTS_PER_MINUTE} requests a minute with this token",
                           headers={"Retry-After": "60"})
        return record
    return check


Reader = Annotated[ApiToken, Depends(token(Scope.READ))]
MembersToken = Annotated[ApiToken, Depends(token(Scope.MEMBERS))]
__all__ = ["AUTH_ERRORS", "DB", "REQUESTS_PER_MINUTE", "MembersToken", "Reader"]
