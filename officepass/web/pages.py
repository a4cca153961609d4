"""Rendering a page: the templates and what every page sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import Response

from officepass.web.guard import csrf_token, language
from officepass.web.words import BUTTONS, NO_NEWS, STAY, VACANCY, stay_limit

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


def bilingual(words: tuple[str, str]) -> Markup:
    """The guide's words in both languages; the page's language (the switch) decides which leads."""
    return Markup('<span class="ja">{}</span><span class="en">{}</span>').format(escape(words[0]),
                                                                                   escape(words[1]))


TEMPLATES.env.globals.update(csrf_token=csrf_token, bi=bilingual, BUTTONS=BUTTONS, VACANCY=VACANCY, STAY=STAY,
                             NO_NEWS=NO_NEWS, stay_limit=stay_limit)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context = {"lang": language(request), **context}
    response: Response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
    # Pages carry a member's codes and CSRF tokens: never from a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response
