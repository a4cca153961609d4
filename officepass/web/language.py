"""The language switch: Japanese first (the store guide's own words), English on request. Kept in
the session cookie, also across a logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from officepass.web.guard import LANGUAGE_KEY, LANGUAGES, check_csrf, safe_next

router = APIRouter()


@router.post("/language", dependencies=[Depends(check_csrf)])
def switch(
    request: Request, lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> RedirectResponse:
    if lang not in LANGUAGES:
        raise HTTPException(400, f"language must be one of {', '.join(LANGUAGES)}")
    request.session[LANGUAGE_KEY] = lang
    target = safe_next(next)
    # A button's answer page has no address of its own: back to the door's page instead.
    return RedirectResponse(target.removesuffix("/act") or "/", status_code=303)
