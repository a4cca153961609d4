"""The API's routers under /api/v1, and its OpenAPI document at /api/v1/openapi.json (the web pages
are not in it: they are the member app's and the console's, not an interface)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from officepass.api import doors, errors, events, members, stores
from officepass.api.deps import REQUESTS_PER_MINUTE
from officepass.web.guard import AttemptLimit

BASE = "/api/v1"
DESCRIPTION = """The pass service's API for the systems an operator already runs (contract §10).

Every request carries `Authorization: Bearer TOKEN`. Errors are `{"error": code, "detail": text}`.
Webhooks POST the same event objects as `GET /events`, signed as Standard Webhooks says."""


def router() -> APIRouter:
    api = APIRouter(prefix=BASE)
    for module in (events, doors, stores, members):
        api.include_router(module.router)
    return api


def install(app: FastAPI) -> None:
    api = router()
    app.include_router(api)
    app.state.api_limit = AttemptLimit(attempts=REQUESTS_PER_MINUTE, window=60.0)
    errors.install(app)

    @cache
    def document() -> dict[str, Any]:
        return get_openapi(title="officepass API", version="1", description=DESCRIPTION, routes=api.routes)

    @app.get(f"{BASE}/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(document())
