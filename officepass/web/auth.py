"""Logging in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from officepass.members import check_password
from officepass.web.guard import DB, LANGUAGE_KEY, MEMBER_KEY, AttemptLimit, check_csrf, safe_next
from officepass.web.pages import render

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(request: Request, member: Annotated[str, Form()], password: Annotated[str, Form()], session: DB,
          next: Annotated[str, Form()] = "/") -> Response:
    client = request.client.host if request.client else "?"
    limit: AttemptLimit = request.app.state.login_limit
    if limit.blocked(client):
        return render(request, "login.html", {"next": next, "error": "too_many"}, 429)
    found = check_password(session, member, password)
    if found is None:
        limit.count(client)
        return render(request, "login.html", {"next": next, "error": "wrong"}, 401)
    request.session[MEMBER_KEY] = found.id
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    lang = request.session.get(LANGUAGE_KEY)
    request.session.clear()
    if lang is not None:
        request.session[LANGUAGE_KEY] = lang
    return RedirectResponse("/login", status_code=303)
