"""The console's integrations page: API tokens and webhooks (contract §10), made and revoked by an
operator. A new token or webhook secret is shown once, on the page that made it, and never again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from officepass.models import WebhookDelivery
from officepass.tokens import Scope, TokenProblem, new_token, revoke_token, tokens
from officepass.web.guard import DB, Operator, check_csrf
from officepass.web.pages import render
from officepass.webhooks import WebhookProblem, add_webhook, remove_webhook, webhooks
from wire.vocab import EventType

router = APIRouter(prefix="/console/integrations")
PAGE = "/console/integrations"


def _page(request: Request, user: Operator, session: DB, shown: dict[str, str] | None = None) -> Response:
    counts: dict[int, dict[str, int]] = {}
    gave_up = WebhookDelivery.gave_up.is_not(None)
    rows = session.execute(select(WebhookDelivery.webhook, WebhookDelivery.done, gave_up, func.count())
                           .group_by(WebhookDelivery.webhook, WebhookDelivery.done, gave_up))
    for hook_id, done, given_up, n in rows:
        slot = counts.setdefault(hook_id, {"owed": 0, "delivered": 0, "given_up": 0})
        slot["given_up" if given_up else "delivered" if done else "owed"] += n
    failing = {d.webhook: d.last_error for d in session.execute(
        select(WebhookDelivery)
        .where(WebhookDelivery.done.is_(False), WebhookDelivery.last_error.is_not(None))
        .order_by(WebhookDelivery.due.desc()).limit(50)).scalars()}
    return render(request, "integrations.html", {
        "user": user, "tokens": tokens(session), "webhooks": webhooks(session), "counts": counts,
        "failing": failing, "scopes": [s.value for s in Scope], "types": [t.value for t in EventType],
        "shown": shown})


@router.get("", response_class=HTMLResponse)
def integrations(request: Request, user: Operator, session: DB) -> Response:
    return _page(request, user, session)


@router.post("/tokens", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
def make_token(request: Request, user: Operator, session: DB, name: Annotated[str, Form()],
               scope: Annotated[str, Form()]) -> Response:
    try:
        made = new_token(session, name, scope, created_by=user.id)
    except TokenProblem as exc:
        raise HTTPException(400, str(exc)) from None
    session.commit()
    return _page(request, user, session, {"what": f"token {made.record.id} ({made.record.scope})",
                                          "value": made.token})


@router.post("/tokens/{token_id}/revoke", dependencies=[Depends(check_csrf)])
def revoke(token_id: str, user: Operator, session: DB) -> RedirectResponse:
    try:
        revoke_token(session, token_id)
    except TokenProblem as exc:
        raise HTTPException(404, str(exc)) from None
    session.commit()
    return RedirectResponse(f"{PAGE}#tokens", status_code=303)


@router.post("/webhooks", response_class=HTMLResponse, dependencies=[Depends(check_csrf)])
def make_webhook(request: Request, user: Operator, session: DB, url: Annotated[str, Form()],
                 types: Annotated[list[str], Form()]) -> Response:
    try:
        hook = add_webhook(session, url, types)
    except WebhookProblem as exc:
        raise HTTPException(400, str(exc)) from None
    session.commit()
    return _page(request, user, session, {"what": f"webhook {hook.id} signing secret", "value": hook.secret})


@router.post("/webhooks/{hook_id}/remove", dependencies=[Depends(check_csrf)])
def remove(hook_id: int, user: Operator, session: DB) -> RedirectResponse:
    try:
        remove_webhook(session, hook_id)
    except WebhookProblem as exc:
        raise HTTPException(404, str(exc)) from None
    session.commit()
    return RedirectResponse(f"{PAGE}#webhooks", status_code=303)
