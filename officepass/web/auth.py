"""Logging in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from officepass.members import check_password
from officepass.web.guard import (
    DB,
    LANGUAGE_KEY,
    AttemptLimit,
    check_csrf,
    end_web_session,
    safe_next,
    start_web_session,
)
from officepass.web.pages import render

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(request: Request, member: Annotated[str, Form()], password: Annotated[str, Form()], session: DB,
          next: Annotated[str, Form()] = "/") -> Response:
    # The client's address as the connection says (forwarded headers count only from the proxies
    # the service is told to trust), and the account: each has its own limit, taken atomically.
    client = request.client.host if request.client else "?"
    by_address: AttemptLimit = request.app.state.login_limit
    by_account: AttemptLimit = request.app.state.account_limit
    address_slot = by_address.take(client)
    account_slot = by_account.take(member) if address_slot is not None else None
    if address_slot is None or account_slot is None:
        if address_slot is not None:
            by_address.give_back(client, address_slot)
        return render(request, "login.html", {"next": next, "error": "too_many"}, 429)
    found = check_password(session, member, password)
    if found is None:
        return render(request, "login.html", {"next": next, "error": "wrong"}, 401)
    by_address.give_back(client, address_slot)  # a good login costs nobody a try
    by_account.give_back(member, account_slot)
    start_web_session(request, session, found.id)
    session.commit()
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request, session: DB) -> Response:
    end_web_session(request, session)  # a copied cookie opens nothing after this
    session.commit()
    lang = request.session.get(LANGUAGE_KEY)
    request.session.clear()
    if lang is not None:
        request.session[LANGUAGE_KEY] = lang
    return RedirectResponse("/login", status_code=303)
