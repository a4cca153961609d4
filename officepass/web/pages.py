"""Rendering a page: the templates and what every page sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from officepass.web.guard import csrf_token
from officepass.web.words import BUTTONS, STAY, VACANCY, WARN_BEFORE_SECONDS

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.globals.update(csrf_token=csrf_token, BUTTONS=BUTTONS, VACANCY=VACANCY, STAY=STAY,
                             WARN_BEFORE_SECONDS=WARN_BEFORE_SECONDS)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    response: Response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
    # Pages carry a member's codes and CSRF tokens: never from a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response
