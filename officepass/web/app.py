"""The FastAPI application: routers by resource, the session cookie, templates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware

from officepass.api import app as api
from officepass.keys import KeyRing
from officepass.link import DoorLink
from officepass.revocations import RevocationPublisher
from officepass.settings import Support
from officepass.web import auth, console, doors, language, live, operate, stores
from officepass.web.guard import AttemptLimit, LoginRequired
from officepass.web.live import Snapshots

# The pages' own scripts only (no inline script, nothing from elsewhere); the code page's QR is a
# data: image; never framed (clickjacking a door's buttons); no guessing of content types.
SECURITY_HEADERS = {
    "Content-Security-Policy": "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
        "connect-src 'self'", "media-src 'self'", "object-src 'none'", "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'"]),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
PRESSES_PER_MINUTE = 20
CODES_PER_MINUTE = 20  # the page refreshes every 45 s: 20 a minute is far more than a member needs


def create_app(sessions: sessionmaker[Session], keys: KeyRing, link: DoorLink, secret: str, *,
               secure_cookie: bool, revocations: RevocationPublisher,
               contact: Support | None = None) -> FastAPI:
    app = FastAPI(title="officepass", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions, app.state.keys, app.state.link = sessions, keys, link
    app.state.revocations = revocations
    app.state.contact = contact  # the office's mail and the support number the trouble screen names
    app.state.snapshots = Snapshots(sessions)
    app.state.login_limit = AttemptLimit(attempts=5, window=60.0)  # failed logins per client address
    app.state.account_limit = AttemptLimit(attempts=10, window=60.0)  # and per account, whoever tries
    # Presses per member: a stuck finger or a script cannot flood a door with commands.
    app.state.press_limit = AttemptLimit(attempts=PRESSES_PER_MINUTE, window=60.0)
    # Codes shown per member: each page mints a signed code, so a script cannot mint them in bulk.
    app.state.code_limit = AttemptLimit(attempts=CODES_PER_MINUTE, window=60.0)
    # A signed cookie (itsdangerous) holding the member id and the CSRF token: httponly always,
    # secure when the service runs on https, SameSite=Lax against cross-site posts.
    # Pages and the vendored decoder travel compressed (event streams are left alone by Starlette).
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="officepass",
                       https_only=secure_cookie, same_site="lax", max_age=12 * 3600)
    secure_headers = dict(SECURITY_HEADERS)
    if secure_cookie:  # served over https: browsers remember to ask for https only
        secure_headers["Strict-Transport-Security"] = "max-age=31536000"

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in secure_headers.items():
            response.headers.setdefault(name, value)
        return response

    # Our own scripts and the vendored QR decoder: served from the package, nothing from elsewhere.
    app.mount("/static", StaticFiles(directory=Path(__file__).resolve().parent / "static"), name="static")
    for module in (auth, language, stores, doors, console, operate, live):
        app.include_router(module.router)
    api.install(app)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        # The whole address, query and all: a door's QR may carry a presence code (?pc=...).
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    return app
