"""The integrators' API and webhooks (contract §10), against the service as `officepass serve`
composes it, a real door on the closed broker, SQLite and PostgreSQL: tokens made with the CLI as an
operator would, the events feed followed by cursor (a repair's late events included, each once), doors,
stores, members; every error as JSON; the OpenAPI document checked by schemathesis over HTTP; webhooks
to a real receiver that checks the Standard Webhooks signature and counts duplicates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from hwsim.broker import free_port
from officepass.cli import main as officepass
from officepass.models import EventRecord, Member, Revocation, SeqGap, SeqRange, WebhookDelivery
from officepass.webhooks import WebhookSender
from tests.rig import wait_for
from tests.test_officepass_browser import serving
from tests.test_officepass_web import (  # noqa: F401  (database and postgres are fixtures)
    DOOR,
    SQLITE_ONLY,
    STORE,
    Site,
    database,
    postgres,
    running_site,
)


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = officepass(list(args))
    return code, out.getvalue()


def new_token(url: str, scope: str) -> str:
    code, out = cli("token", "new", f"{scope} integration", "--scope", scope, "--db", url)
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    assert token.startswith("opt_")
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def follow(site: Site, token: str, after: str | None, limit: int = 2) -> tuple[list[dict[str, Any]], str]:
    """Every page from `after` to the end, as an integrator's loop does."""
    seen: list[dict[str, Any]] = []
    while True:
        query = {"limit": str(limit), **({"after": after} if after is not None else {})}
        answer = site.client.get("/api/v1/events", params=query, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += body["events"]
        if not body["events"]:
            return seen, body["next"]
        after = body["next"]


def press(site: Site, times: int) -> None:
    for _ in range(times):
        site.board.press()
        assert wait_for(lambda: not site.board.relay(), 5)


def stored_seqs(site: Site) -> dict[int, str]:
    with site.db() as s:  # type: ignore[operator]
        rows = s.execute(select(EventRecord).filter_by(store=STORE, door=DOOR)).scalars()
        return {e.seq: e.id for e in rows}


def test_an_integrator_follows_the_feed_and_gets_every_event_once_a_repair_included(
        tmp_path: Path, database: str) -> None:  # noqa: F811
    with running_site(tmp_path, database) as site:
        token = new_token(database, "read")
        press(site, 4)
        assert wait_for(lambda: len(stored_seqs(site)) >= 4, 15)
        first, cursor = follow(site, token, None)
        assert [e["seq"] for e in first] == sorted(stored_seqs(site))
        assert all(e["store"] == STORE and e["door"] == DOOR and e["type"] and e["received"].endswith("Z")
                   for e in first)
        assert [e["cursor"] for e in first] == sorted((e["cursor"] for e in first), key=int)
        # Seqs 5-7 come and the service loses 6 and 7 (as a broker restart loses a shared
        # subscription's queue): the repair brings them late, after 8 was stored.
        press(site, 3)
        assert wait_for(lambda: len(stored_seqs(site)) >= 7, 15)
        with site.db.begin() as s:  # type: ignore[attr-defined]
            epoch = s.execute(select(SeqRange.epoch).filter_by(store=STORE, door=DOOR)).scalar_one()
            s.execute(delete(EventRecord).where(EventRecord.store == STORE, EventRecord.seq.between(6, 7)))
            s.add(SeqGap(store=STORE, door=DOOR, epoch=epoch, first=6, last=7))
        press(site, 1)
        middle, cursor = follow(site, token, cursor)
        assert wait_for(lambda: set(stored_seqs(site)) == set(range(1, 9)), 30), "repaired from the journal"
        late, cursor = follow(site, token, cursor)
        everything = first + middle + late
        counts = Counter(e["id"] for e in everything)
        assert max(counts.values()) == 1, "no event twice"
        assert {e["seq"]: e["id"] for e in everything} == stored_seqs(site), "none missed"
        repaired = [e for e in everything if e["seq"] in (6, 7)]
        assert all(int(e["cursor"]) > int(next(x["cursor"] for x in everything if x["seq"] == 8))
                   for e in repaired), "the repair's events came after the cursor the client held"
        again, same = follow(site, token, cursor)
        assert again == [] and same == cursor, "nothing new: the same cursor"
        # Filters page the same feed; a filtered page that ends short still moves the cursor on.
        only = site.client.get("/api/v1/events", params={"type": "unlock", "door": DOOR, "limit": "1000"},
                               headers=bearer(token)).json()
        assert {e["type"] for e in only["events"]} == {"unlock"} and len(only["events"]) == 8
        assert only["next"] == cursor
        doors = site.client.get("/api/v1/doors", headers=bearer(token)).json()["doors"]
        main = next(d for d in doors if d["door"] == DOOR)
        assert main["online"] is True and main["status"]["lock"] == "locked"
        assert main["gaps"] == [] and main["lost"] == [] and main["last_seen"].endswith("Z")


@SQLITE_ONLY
def test_tokens_scopes_and_every_error_as_json(tmp_path: Path, database: str) -> None:  # noqa: F811
    with running_site(tmp_path, database) as site:
        reader, manager = new_token(database, "read"), new_token(database, "members")
        api = site.client
        missing = api.get("/api/v1/events")
        assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert api.get("/api/v1/events", headers=bearer("opt_000000000000_" + "x" * 43)).status_code == 401
        assert api.get("/api/v1/events", headers={"Authorization": "Basic abc"}).status_code == 401
        assert api.get("/api/v1/events", headers=bearer(manager)).json()["error"] == "forbidden"
        post = api.post("/api/v1/members", json={"id": "m-9", "name": "Kei"}, headers=bearer(reader))
        assert post.status_code == 403 and "members" in post.json()["detail"]
        cases = [("/api/v1/events?limit=0", 422, "invalid"), ("/api/v1/events?limit=1001", 422, "invalid"),
                 ("/api/v1/events?after=abc", 422, "invalid"), ("/api/v1/events?type=opened", 422, "invalid"),
                 ("/api/v1/events?store=%00", 422, "invalid"),
                 ("/api/v1/events?after=999999", 404, "unknown_cursor"),
                 ("/api/v1/nothing", 404, "not_found")]
        for path, status, code in cases:
            answer = api.get(path, headers=bearer(reader))
            assert (answer.status_code, answer.json()["error"]) == (status, code), path
            assert answer.headers["content-type"] == "application/json" and answer.json()["detail"]
        assert api.delete("/api/v1/events", headers=bearer(reader)).json()["error"] == "method_not_allowed"
        bad_body = api.post("/api/v1/members", content=b"{not json",
                            headers={**bearer(manager), "content-type": "application/json"})
        assert bad_body.status_code == 422 and bad_body.json()["error"] == "invalid"
        # Revoked: it opens nothing more, at once.
        token_id = reader.split("_")[1]
        assert cli("token", "revoke", token_id, "--db", database)[0] == 0
        assert api.get("/api/v1/doors", headers=bearer(reader)).status_code == 401
        code, listing = cli("token", "list", "--db", database)
        assert code == 0 and "revoked" in listing and reader.split("_", 2)[2] not in listing
        with site.db() as s:  # type: ignore[operator]
            from officepass.models import ApiToken
            hashes = [t.secret_hash for t in s.execute(select(ApiToken)).scalars()]
        assert all(len(h) == 64 and h not in reader + manager for h in hashes), "only hashes are kept"


def test_a_membership_platform_adds_disables_and_enables_members(
        tmp_path: Path, database: str) -> None:  # noqa: F811
    with running_site(tmp_path, database) as site:
        manager, reader = new_token(database, "members"), new_token(database, "read")
        api = site.client
        made = api.post("/api/v1/members", json={"id": "m-20", "name": "Kei", "password": "kei's password"},
                        headers=bearer(manager))
        assert made.status_code == 201 and made.json()["id"] == "m-20" and made.json()["disabled"] is False
        assert api.post("/api/v1/members", json={"id": "m-20", "name": "Kei"},
                        headers=bearer(manager)).status_code == 409
        elsewhere = api.post("/api/v1/members", json={"id": "m-21", "name": "Rin"}, headers=bearer(manager))
        assert elsewhere.status_code == 201
        assert site.login("m-20", "kei's password") == 303
        api.cookies.clear()
        assert site.login("m-21", "") != 303 and site.login("m-21", "!elsewhere") != 303, "no password opens"
        with site.db() as s:  # type: ignore[operator]
            versions = s.execute(select(Revocation.version).order_by(Revocation.version.desc())).scalars()
            before = versions.first() or 0
        off = api.post("/api/v1/members/m-20/disable", headers=bearer(manager))
        assert off.status_code == 200 and off.json()["disabled"] is True
        assert api.post("/api/v1/members/m-20/disable", headers=bearer(manager)).json()["disabled"] is True
        with site.db() as s:  # type: ignore[operator]
            newest = s.execute(select(Revocation).order_by(Revocation.version.desc())).scalars().first()
            assert newest is not None and newest.version == before + 1 and "m-20" in newest.members["ids"]
        site.door.wait_line(f"revocation list version {before + 1}")
        assert site.login("m-20", "kei's password") != 303, "a disabled member logs in no more"
        on = api.post("/api/v1/members/m-20/enable", headers=bearer(manager))
        assert on.status_code == 200 and on.json()["disabled"] is False
        with site.db() as s:  # type: ignore[operator]
            newest = s.execute(select(Revocation).order_by(Revocation.version.desc())).scalars().first()
            assert newest is not None and newest.version == before + 2 and "m-20" not in newest.members["ids"]
        assert api.post("/api/v1/members/nobody/disable", headers=bearer(manager)).status_code == 404
        assert api.post("/api/v1/members/op/disable", headers=bearer(manager)).status_code == 403
        with site.db() as s:  # type: ignore[operator]
            assert s.get(Member, "op").disabled is False  # type: ignore[union-attr]
        stores = api.get("/api/v1/stores", headers=bearer(reader)).json()["stores"]
        shinjuku = next(s for s in stores if s["id"] == STORE)
        assert shinjuku["doors"] == [DOOR, "back"] and shinjuku["seats"]["capacity"] == 2
        assert shinjuku["sessions"] == []


@SQLITE_ONLY
def test_the_openapi_document_holds_against_the_running_service(
        tmp_path: Path, database: str) -> None:  # noqa: F811
    """schemathesis generates requests from /api/v1/openapi.json (valid and not) and checks every answer
    against it: no 500, documented statuses and bodies, JSON errors."""
    with running_site(tmp_path, database) as site:
        press(site, 2)
        port = free_port()
        with serving(site, port):
            document = site.client.get("/api/v1/openapi.json").json()
            assert set(document["paths"]) == {"/api/v1/events", "/api/v1/doors", "/api/v1/stores",
                                              "/api/v1/members", "/api/v1/members/{member_id}/disable",
                                              "/api/v1/members/{member_id}/enable"}
            for scope, method in (("read", "GET"), ("members", "POST")):
                token = new_token(database, scope)
                run = subprocess.run(
                    [str(Path(sys.executable).with_name("schemathesis")), "run",
                     f"http://127.0.0.1:{port}/api/v1/openapi.json",
                     "--header", f"Authorization: Bearer {token}",
                     "--include-method", method, "--checks", "all", "--max-examples", "30", "--seed", "1",
                     "--no-color", "--workers", "2"],
                    capture_output=True, text=True, timeout=300, cwd=tmp_path)
                assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


class Receiver:
    """A webhook receiver as an integrator writes one: checks the signature and the timestamp, answers
    500 to each event's first delivery (so every one is retried), counts what arrived."""

    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.arrived: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                ok = outer.verify(self.headers["webhook-id"], self.headers["webhook-timestamp"],
                                  self.headers["webhook-signature"], body)
                with outer._lock:
                    first = outer.arrived[self.headers["webhook-id"]] == 0
                    if ok:
                        outer.arrived[self.headers["webhook-id"]] += 1
                        outer.bodies[self.headers["webhook-id"]] = json.loads(body)
                    else:
                        outer.bad_signatures += 1
                self.send_response(500 if first or not ok else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/door"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, webhook_id: str, timestamp: str, signatures: str, body: bytes) -> bool:
        if abs(time.time() - int(timestamp)) > 300:
            return False
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body,
                                             hashlib.sha256).digest()).decode()
        return any(hmac.compare_digest(f"v1,{expected}", s) for s in signatures.split())

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.stop()


def test_webhooks_arrive_signed_at_least_once_retried_across_a_restart(
        tmp_path: Path, database: str) -> None:  # noqa: F811
    with running_site(tmp_path, database) as site, receiver() as hook:
        code, out = cli("webhook", "add", hook.url, "--types", "unlock,check_in", "--db", database)
        assert code == 0, out
        hook.secret = out.strip().splitlines()[-1]
        assert hook.secret.startswith("whsec_")
        assert cli("webhook", "add", "ftp://x", "--types", "unlock", "--db", database)[0] == 2
        assert cli("webhook", "add", hook.url, "--types", "opened", "--db", database)[0] == 2
        press(site, 3)
        assert wait_for(lambda: len(stored_seqs(site)) >= 3, 15)
        # Every first delivery is refused; the service stops before the retry is due (5 s) and the
        # one that starts again (another instance, or the same after a restart) sends them.
        assert wait_for(lambda: len(hook.arrived) == 3, 15)
        site.service.webhooks.stop()
        with site.db() as s:  # type: ignore[operator]
            owed = s.execute(select(WebhookDelivery)).scalars().all()
            assert len(owed) == 3 and all(not d.done and d.attempts == 1 and d.last_error == "HTTP 500"
                                          for d in owed)
        restarted = WebhookSender(site.db)  # type: ignore[arg-type]
        restarted.start()
        try:
            assert wait_for(lambda: restarted.sent == 3, 30)
        finally:
            restarted.stop()
        ids = set(stored_seqs(site).values())
        assert set(hook.arrived) == ids
        assert all(n == 2 for n in hook.arrived.values()), "each twice: refused, then taken"
        assert hook.bad_signatures == 0
        body = next(iter(hook.bodies.values()))
        assert body["type"] == "unlock" and body["store"] == STORE and body["cursor"] and body["received"]
        code, listing = cli("webhook", "list", "--db", database)
        assert hook.url in listing and hook.secret not in listing


@SQLITE_ONLY
def test_an_operator_makes_and_revokes_tokens_and_webhooks_in_the_console(
        tmp_path: Path, database: str) -> None:  # noqa: F811
    import re

    with running_site(tmp_path, database) as site:
        site.as_member("m-1", "correct horse")
        assert site.client.get("/console/integrations", follow_redirects=False).status_code in (303, 403)
        site.as_member("op", "operator pass")
        page = "/console/integrations"
        assert 'href="/console/integrations"' in site.client.get("/console").text
        no_csrf = site.client.post(f"{page}/tokens", data={"name": "x", "scope": "read"})
        assert no_csrf.status_code == 403, "forms carry their CSRF token"
        made = site.client.post(f"{page}/tokens", data={"name": "warehouse", "scope": "read",
                                                        "csrf": site.csrf(page)})
        assert made.status_code == 200 and "not shown again" in made.text
        found = re.search(r"data-secret>(opt_[^<]+)<", made.text)
        assert found
        token = found.group(1)
        assert site.client.get("/api/v1/doors", headers=bearer(token)).status_code == 200
        listing = site.client.get(page).text
        assert "warehouse" in listing and token not in listing, "shown once"
        token_id = token.split("_")[1]
        assert site.post(f"{page}/tokens/{token_id}/revoke", {}, page=page) == 303
        assert site.client.get("/api/v1/doors", headers=bearer(token)).status_code == 401
        assert site.client.post(f"{page}/tokens", data={"name": " ", "scope": "read",
                                                        "csrf": site.csrf(page)}).status_code == 400
        hook = site.client.post(f"{page}/webhooks", data={"url": "https://platform.test/hooks",
                                                          "types": ["check_in", "checkout"],
                                                          "csrf": site.csrf(page)})
        assert hook.status_code == 200
        secret = re.search(r"data-secret>(whsec_[^<]+)<", hook.text)
        assert secret and secret.group(1) not in site.client.get(page).text
        assert "check_in, checkout" in site.client.get(page).text
        bad = site.client.post(f"{page}/webhooks", data={"url": "javascript:alert(1)", "types": ["check_in"],
                                                         "csrf": site.csrf(page)})
        assert bad.status_code == 400
        hook_id = re.search(r'data-webhook="(\d+)"', site.client.get(page).text)
        assert hook_id
        assert site.post(f"{page}/webhooks/{hook_id.group(1)}/remove", {}, page=page) == 303
        assert "platform.test" not in site.client.get(page).text
