"""The FastAPI application: routers by resource, the session cookie, templates."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from officepass.api import app as api
from officepass.door_config import ConfigPublisher
from officepass.enrollment import EnrollPlace
from officepass.keys import KeyRing
from officepass.link import DoorLink
from officepass.notifier import FleetNotifier
from officepass.revocations import RevocationPublisher
from officepass.settings import Support
from officepass.web import (
    auth,
    charts,
    console,
    doors,
    fleet_ops,
    integrations,
    language,
    live,
    operate,
    stores,
)
from officepass.web import enroll as enroll_routes
from officepass.web import releases as release_routes
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


class SecurityHeaders:
    """Adds the headers every answer carries (those it does not set itself). Plain ASGI: an event
    stream's every message passes straight through (a BaseHTTPMiddleware would copy each through a
    memory stream of its own, which a thousand open streams feel)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *((k, v) for k, v in self.headers if k not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(sessions: sessionmaker[Session], keys: KeyRing, link: DoorLink, secret: str, *,
               secure_cookie: bool, revocations: RevocationPublisher, notifier: FleetNotifier,
               contact: Support | None = None, configs: ConfigPublisher | None = None,
               enroll: EnrollPlace | None = None, base_url: str = "",
               releases_dir: Path | None = None) -> FastAPI:
    app = FastAPI(title="officepass", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions, app.state.keys, app.state.link = sessions, keys, link
    app.state.revocations = revocations
    app.state.configs = configs  # doors' remote configurations: nudged when one is changed
    app.state.base_url = base_url  # what the enrollment command names
    app.state.releases_dir = releases_dir or Path("/nonexistent")  # door releases' files
    app.state.enroll = enroll  # what enrolled doors are given (None: no [broker], no enrollment)
    app.state.enroll_limit = AttemptLimit(attempts=enroll_routes.FAILURES_PER_MINUTE, window=60.0)
    app.state.notifier = notifier  # what changed: the live pages wait for it
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

    app.add_middleware(SecurityHeaders, headers=secure_headers)

    # Our own scripts and the vendored QR decoder: served from the package, nothing from elsewhere.
    app.mount("/static", StaticFiles(directory=Path(__file__).resolve().parent / "static"), name="static")
    for module in (auth, language, stores, doors, console, integrations, charts, operate, live,
                   enroll_routes, fleet_ops, release_routes):
        app.include_router(module.router)
    api.install(app)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        # The whole address, query and all: a door's QR may carry a presence code (?pc=...).
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    return app
