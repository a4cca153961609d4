"""Logging in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from officepass.members import check_password
from officepass.web.guard import DB, MEMBER_KEY, LoginLimit, check_csrf
from officepass.web.pages import render

router = APIRouter()


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(request: Request, member: Annotated[str, Form()], password: Annotated[str, Form()], session: DB,
          next: Annotated[str, Form()] = "/") -> Response:
    client = request.client.host if request.client else "?"
    limit: LoginLimit = request.app.state.login_limit
    if limit.blocked(client):
        return render(request, "login.html", {"next": next, "error": "too_many"}, 429)
    found = check_password(session, member, password)
    if found is None:
        limit.failed(client)
        return render(request, "login.html", {"next": next, "error": "wrong"}, 401)
    request.session[MEMBER_KEY] = found.id
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
