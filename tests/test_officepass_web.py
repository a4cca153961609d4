"""The member app over HTTP against a real door (`doorctl run --sim`), a real mosquitto and the fleet
consumer: the store guide's flow, the guide's refusals, the unlock-trouble screen, CSRF, the login
limit and the operator console. (The browser walks the same guide in test_officepass_browser.)"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hwsim.broker import Broker
from officepass.broker_config import fleet_identities
from officepass.db import engine_for, migrate, sessions
from officepass.keys import KeyRing
from officepass.members import add_member, add_store
from officepass.models import AlarmRecord, LiveSession, ManualCheckout, Member
from officepass.service import Service
from officepass.settings import Support
from officepass.web.app import PRESSES_PER_MINUTE
from tests.closed_broker import ClosedBroker
from tests.pg import new_database, postgres_cluster
from tests.procs import BoardProcess, DoorProcess, door_trusting_service
from tests.rig import wait_for
from tests.smtp_sink import SmtpSink
from wire.topics import Topics

STORE, DOOR = "shinjuku-3", "main"


SUPPORT = "support@pass.test"
SUPPORT_PHONE = "03-1234-5678"
# The door's scanner outside: what a member's phone code is shown to, in the tests that do.
ENTRY_SCANNER = {"name": "front", "type": "serial", "side": "entry", "port": "/dev/ttyACM0"}


class Site:
    def __init__(self, client: TestClient, board: BoardProcess, db: object, app: object, mailbox: SmtpSink,
                 door: DoorProcess, closed: ClosedBroker, service: Service) -> None:
        self.client, self.board, self.db, self.app = client, board, db, app
        self.mailbox, self.door, self.closed, self.service = mailbox, door, closed, service
        self.broker = closed.broker

    def as_member(self, member: str, password: str) -> None:
        self.client.cookies.clear()
        assert self.login(member, password) == 303

    def post(self, path: str, form: dict[str, str], page: str = "/console") -> int:
        response = self.client.post(path, data={**form, "csrf": self.csrf(page)}, follow_redirects=False)
        return response.status_code

    def csrf(self, path: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def login(self, member: str, password: str) -> int:
        token = self.csrf("/login")
        return self.client.post("/login", data={"member": member, "password": password, "csrf": token,
                                                "next": "/"}, follow_redirects=False).status_code

    def press(self, act: str, door: str = DOOR) -> tuple[int, str]:
        token = self.csrf(f"/s/{STORE}/{DOOR}")
        response = self.client.post(f"/s/{STORE}/{door}/act", data={"act": act, "csrf": token})
        return response.status_code, response.text


# What does not depend on the database runs once, on SQLite; what stores and reads fleet state,
# alarms, members and checkouts runs on both.
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The service's database for one test: a new SQLite file, or a new database in the throwaway
    PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'officepass.db'}"
    return new_database(request.getfixturevalue("postgres"))


@pytest.fixture
def site(tmp_path: Path, database: str) -> Iterator[Site]:
    with running_site(tmp_path, database) as running:
        yield running


@contextmanager
def running_site(tmp_path: Path, database: str, extra_stores: dict[str, list[str]] | None = None,
                 republish_seconds: float = 600.0, **door_sections: Any) -> Iterator[Site]:
    """The service as `officepass serve` composes it (HTTP app, fleet consumer, door link, revocation
    publisher, support mail, offline watch) on the closed broker `officepass broker-config` writes
    (TLS, identities, the ACL), with a real `doorctl run --sim` trusting its key; `door_sections`
    add to the door's config."""
    ring = KeyRing(tmp_path / "keys")
    key = ring.new("svc1")
    url = database
    migrate(url)
    db = sessions(engine_for(url))
    with db.begin() as s:
        add_member(s, "m-1", "Aiko", "correct horse")
        add_member(s, "m-2", "Ben", "second horse")
        add_member(s, "m-3", "Chika", "third horse")
        add_member(s, "op", "Operator", "operator pass", role="operator")
        add_store(s, STORE, "Shinjuku 3", [DOOR, "back"], areas="1F lounge", rules="Quiet after 20:00")
        for store, doors in (extra_stores or {}).items():
            add_store(s, store, store, doors)
    with db() as s:
        identities = fleet_identities(s, Topics(), ["a", "b"], ["watcher"])
    closed = ClosedBroker(tmp_path, identities)
    door_overrides = door_sections.pop("door", {})
    board, door = door_trusting_service(
        tmp_path, closed.door_mqtt(STORE, DOOR), key.kid, key.public_b64,
        door={"store": STORE, "name": DOOR, "seats": 2, **door_overrides},
        lock={"relay_pin": "GPIO17", "exit_button_pin": "GPIO22", "lock_sensor_pin": "GPIO24",
              "unlock_seconds": 1}, **{"reader": [ENTRY_SCANNER], **door_sections})
    mailbox = SmtpSink()
    service = Service(db, ring, closed.service_access(), "test-secret-" + "x" * 32, base_url="http://pass.test",
                      support=Support(SUPPORT, "127.0.0.1", mailbox.port, "officepass@pass.test",
                                      SUPPORT_PHONE),
                      offline_alarm_seconds=2, republish_seconds=republish_seconds)
    assert service.start()
    try:
        with TestClient(service.app) as client:
            yield Site(client, board, db, service.app, mailbox, door, closed, service)
    finally:
        service.stop()
        mailbox.stop()
        door.stop()
        board.close()
        closed.stop()


def stored(site: Site, model: Any, key: Any) -> Any:
    with site.db() as s:  # type: ignore[operator]
        row = s.get(model, key)
        if row is not None:
            s.expunge(row)
        return row


def test_the_guide_end_to_end(site: Site) -> None:
    first = site.client.get(f"/s/{STORE}/{DOOR}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")
    assert site.login("m-1", "wrong horse") == 401
    assert site.login("m-1", "correct horse") == 303
    page = site.client.get(f"/s/{STORE}/{DOOR}").text
    assert "入店する" in page and "1F lounge" in page and "Quiet after 20:00" in page
    status, text = site.press("check_in")
    assert status == 200 and "入店しました" in text
    assert wait_for(site.board.relay, 5), "入店する opened the simulated door"

    def inside() -> str | None:
        with site.db() as s:  # type: ignore[operator]
            live = s.get(LiveSession, (STORE, "m-1"))
            return None if live is None else str(live.session["state"])

    assert wait_for(lambda: inside() == "checked_in", 10)
    assert wait_for(lambda: '>△<' in site.client.get("/").text, 10), "the vacancy board turned ○ → △"
    page = site.client.get(f"/s/{STORE}/{DOOR}").text
    assert "開錠する" in page and "チェックアウト手続きに進む" in page and "入店する" not in page
    assert site.press("unlock")[0] == 200
    assert site.press("checkout_begin")[0] == 200
    assert wait_for(lambda: inside() == "checking_out", 10)
    assert "チェックアウトする" in site.client.get(f"/s/{STORE}/{DOOR}").text
    status, text = site.press("checkout")
    assert status == 200 and "チェックアウトしました" in text
    status, text = site.press("unlock")  # after checkout the door no longer opens, as the guide warns
    assert status == 409 and "チェックアウト後" in text


@SQLITE_ONLY
def test_no_answer_is_the_trouble_screen(site: Site) -> None:
    assert site.login("m-1", "correct horse") == 303
    started = time.monotonic()
    status, text = site.press("check_in", door="back")  # a door that does not answer
    assert status == 504 and "他の店舗をご利用いただき" in text, "入店する: the entering advice"
    assert time.monotonic() - started >= 5


@SQLITE_ONLY
def test_forms_need_their_csrf_token(site: Site) -> None:
    assert site.login("m-1", "correct horse") == 303
    forged = site.client.post(f"/s/{STORE}/{DOOR}/act", data={"act": "check_in", "csrf": "forged"})
    assert forged.status_code == 403
    assert not site.board.relay()


@SQLITE_ONLY
def test_logins_are_limited(site: Site) -> None:
    assert [site.login("m-1", f"guess {i}") for i in range(5)] == [401] * 5
    assert site.login("m-1", "correct horse") == 429, "even the right password waits out the limit"


@SQLITE_ONLY
def test_the_console_is_for_operators(site: Site) -> None:
    assert site.login("m-1", "correct horse") == 303
    assert site.client.get("/console").status_code == 403
    site.client.cookies.clear()
    assert site.login("op", "operator pass") == 303
    assert wait_for(lambda: "online" in site.client.get("/console").text, 10)
    assert f"{STORE}/{DOOR}" in site.client.get("/console").text


def test_serve_refuses_a_broken_settings_file_naming_the_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    settings = tmp_path / "officepass.toml"
    settings.write_text('[service]\nlisten = 8080\ncolour = "red"\n[mqtt]\n')
    res = subprocess.run([sys.executable, "-m", "officepass.cli", "serve", "--config", str(settings)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    for problem in ("service.listen: must be a string", "service.colour: unknown key",
                    "service.base_url: required key is missing", "mqtt.host: required key is missing"):
        assert problem in res.stderr


def test_an_operator_sets_up_a_closed_broker_and_the_service_with_the_cli(tmp_path: Path) -> None:
    """The README's setup, command by command: the CA, a store, the broker's configuration, mosquitto
    on it, `officepass serve` with its own identity; an anonymous client is refused."""
    import subprocess
    import sys
    import urllib.request

    from hwsim.broker import free_port

    port, broker_port = free_port(), free_port()
    settings = tmp_path / "officepass.toml"
    secrets = tmp_path / "broker" / "secrets"
    settings.write_text(
        f'[service]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}"\n'
        f'database = "sqlite:///{tmp_path / "s.db"}"\nkeys = "{tmp_path / "keys"}"\n'
        f'secret_file = "{tmp_path / "secret"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nca_file = "{tmp_path / "ca" / "ca.pem"}"\n'
        f'username = "svc/a"\npassword_file = "{secrets / "svc_a.password"}"\n'
        f'[broker]\nlisten = "127.0.0.1:{broker_port}"\nca_dir = "{tmp_path / "ca"}"\ninstances = ["a"]\n')
    run = [sys.executable, "-m", "officepass.cli"]

    def officepass(*args: str) -> str:
        done = subprocess.run([*run, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
        return done.stdout

    officepass("ca", "init", "--config", str(settings))
    officepass("store", "add", STORE, "--door", DOOR, "--db", f"sqlite:///{tmp_path / 's.db'}")
    out = officepass("broker-config", "--config", str(settings), "--out", str(tmp_path / "broker"))
    assert f"door/{STORE}/{DOOR}" in out and "1 doors" in out
    for secret in (tmp_path / "ca" / "ca.key", tmp_path / "broker" / "passwords", secrets / "svc_a.password"):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    broker = Broker(tmp_path, port=broker_port, conf=tmp_path / "broker" / "mosquitto.conf")
    server = subprocess.Popen([*run, "serve", "--config", str(settings)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def login_page() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                    return "ログイン" in response.read().decode()
            except OSError:
                return False

        assert wait_for(login_page, 30, step=0.2)
        assert oct((tmp_path / "secret").stat().st_mode & 0o777) == "0o600"
        assert wait_for(lambda: "as svc/a" in broker.log.read_text(), 15), "on the broker as svc/a"
        assert "not authorised" not in broker.log.read_text()
    finally:
        server.terminate()
        server.wait(10)
        broker.stop()


def test_an_unlock_fault_mails_support_and_waits_for_an_acknowledgement(site: Site) -> None:
    site.as_member("m-1", "correct horse")
    site.board.request(op="jam", jammed=True)  # the bolt will not follow the relay
    status, text = site.press("check_in")
    assert status == 200 and 'data-watch-door="/live/door/' in text, "the page watches for the fault"
    mails = site.mailbox.wait(1, 15)
    assert mails, "support heard of the unlock fault"
    recipients, mail = mails[0]
    assert recipients == [SUPPORT] and mail["Subject"] == f"[officepass] unlock_fault at {STORE}/{DOOR}"
    assert "console#alarm-" in mail.get_content()
    assert "サポートセンターへお電話ください" in site.client.get(f"/s/{STORE}/{DOOR}/trouble").text
    entering = site.client.get(f"/s/{STORE}/{DOOR}/trouble?act=check_in").text
    assert 'data-advice="entering"' in entering and 'data-advice="leaving"' not in entering

    def still_inside() -> bool:
        with site.db() as s:  # type: ignore[operator]
            return s.get(LiveSession, (STORE, "m-1")) is not None

    # The bolt never moved: the door withdrew the check-in, and the seat is free again.
    assert wait_for(lambda: not still_inside(), 15), "the member never got in: no seat held"
    assert "入店する" in site.client.get(f"/s/{STORE}/{DOOR}").text

    site.as_member("op", "operator pass")
    page = site.client.get("/console").text
    found = re.search(r'id="alarm-(\d+)" data-alarm="unlock_fault"', page)
    assert found and "support mailed" in page
    assert site.post(f"/console/alarms/{found.group(1)}/ack", {}) == 303
    with site.db() as s:  # type: ignore[operator]
        record = s.get(AlarmRecord, int(found.group(1)))
        assert record.acked_by == "op" and record.acked_at is not None
    assert 'data-alarm="unlock_fault"' not in site.client.get("/console").text
    assert site.post(f"/console/alarms/{found.group(1)}/ack", {}) == 404, "acknowledged once"
    assert len(site.mailbox.messages) == 1, "one mail per alarm"


@SQLITE_ONLY
def test_a_door_offline_longer_than_configured_is_an_alarm_and_a_mail(site: Site) -> None:
    site.door.kill()  # the broker publishes its Last Will
    mails = site.mailbox.wait(1, 20)
    assert mails and mails[0][1]["Subject"] == f"[officepass] offline at {STORE}/{DOOR}"
    site.as_member("op", "operator pass")
    page = site.client.get("/console").text
    assert 'data-online="false"' in page and 'data-alarm="offline"' in page


def test_a_manual_checkout_records_who_and_why(site: Site) -> None:
    site.as_member("m-1", "correct horse")
    assert site.press("check_in")[0] == 200

    def live() -> bool:
        with site.db() as s:  # type: ignore[operator]
            return s.get(LiveSession, (STORE, "m-1")) is not None

    assert wait_for(live, 10)
    site.as_member("op", "operator pass")
    assert site.post("/console/checkout", {"store": STORE, "member": "m-1", "reason": " "}) == 400
    assert site.post("/console/checkout", {"store": STORE, "member": "m-1", "reason": "phone died"}) == 303
    assert wait_for(lambda: not live(), 10), "the door closed the session"
    with site.db() as s:  # type: ignore[operator]
        (record,) = s.query(ManualCheckout).all()
        assert (record.member, record.operator, record.reason) == ("m-1", "op", "phone died")
        assert record.answer["ok"] is True
    assert "phone died" in site.client.get("/console").text
    site.as_member("m-1", "correct horse")
    assert site.press("unlock")[0] == 409, "checked out: the door no longer opens for m-1"


def test_members_are_added_and_disabled_from_the_console(site: Site) -> None:
    site.as_member("op", "operator pass")
    assert site.post("/console/members", {"member": "m-9", "name": "Kei", "password": "short"}) == 400
    assert site.post("/console/members", {"member": "m-9", "name": "Kei", "password": "ninth horse"}) == 303
    assert site.post("/console/members/m-2/disable", {}) == 303
    with site.db() as s:  # type: ignore[operator]
        assert s.get(Member, "m-2").disabled and not s.get(Member, "m-9").disabled
    # The door applied the signed list (its event), so even a code minted for m-2 is refused now.
    assert wait_for(lambda: "revocation_applied" in site.client.get("/console").text, 15)
    site.client.cookies.clear()
    assert site.login("m-2", "second horse") == 401
    assert site.login("m-9", "ninth horse") == 303


@SQLITE_ONLY
def test_the_event_log_filters_by_type_and_member(site: Site) -> None:
    site.as_member("m-1", "correct horse")
    assert site.press("check_in")[0] == 200
    assert site.press("checkout")[0] == 200
    site.as_member("m-2", "second horse")
    assert site.press("unlock")[0] == 409  # denied: not checked in
    site.as_member("op", "operator pass")
    assert wait_for(lambda: site.client.get("/console").text.count("data-event=") >= 3, 10)
    rows = re.findall(r'data-event="(\w+)"', site.client.get("/console?type=check_in").text)
    assert rows == ["check_in"]
    rows = re.findall(r'data-event="(\w+)"', site.client.get("/console?member=m-2").text)
    assert rows == ["denied"]
    assert re.findall(r'data-event="(\w+)"', site.client.get("/console?store=elsewhere").text) == []


@SQLITE_ONLY
def test_presses_are_limited_per_member(site: Site) -> None:
    site.as_member("m-2", "second horse")
    answers = [site.press("unlock")[0] for _ in range(PRESSES_PER_MINUTE)]
    assert answers == [409] * PRESSES_PER_MINUTE  # the door's own refusal: not checked in
    status, text = site.press("unlock")
    assert status == 429 and "短時間に何度も押されました" in text
    site.as_member("m-1", "correct horse")
    assert site.press("check_in")[0] == 200, "another member is not held back"


@SQLITE_ONLY
def test_the_language_switch_puts_english_first(site: Site) -> None:
    site.as_member("m-1", "correct horse")
    page = site.client.get(f"/s/{STORE}/{DOOR}").text
    assert '<html lang="ja" class="lang-ja">' in page and 'data-lang="en"' in page
    response = site.client.post("/language", data={"lang": "en", "next": f"/s/{STORE}/{DOOR}/act",
                                                   "csrf": site.csrf("/")}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/s/{STORE}/{DOOR}"
    page = site.client.get(f"/s/{STORE}/{DOOR}").text
    assert '<html lang="en" class="lang-en">' in page and 'data-lang="ja"' in page
    assert '<span class="ja">入店する</span><span class="en">Check in</span>' in page
    bad = site.client.post("/language", data={"lang": "fr", "csrf": site.csrf("/")}, follow_redirects=False)
    assert bad.status_code == 400
    site.post("/logout", {}, page="/")
    assert '<html lang="en"' in site.client.get("/login").text, "the choice outlives the login"


@SQLITE_ONLY
def test_the_members_code_is_for_the_store_it_was_shown_from_and_opens_its_door(site: Site) -> None:
    import base64

    import cv2
    import numpy as np

    from drivers.decode import DecodePipeline
    from wire.codes import parse_code

    site.as_member("m-1", "correct horse")
    assert site.client.get("/code", follow_redirects=False).headers["location"] == "/", "pick a store first"
    page = site.client.get(f"/s/{STORE}/{DOOR}/code")
    assert page.status_code == 200
    found = re.search(r'src="data:image/png;base64,([^"]+)"', page.text)
    assert found, "the code is a picture on the page"
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(found.group(1)), np.uint8), cv2.IMREAD_GRAYSCALE)
    (text,) = DecodePipeline().decode(picture)  # the door's own decoder reads what the phone shows
    code = parse_code(text)
    assert code.stores == (STORE,) and code.member == "m-1" and code.exp - code.iat == 60
    assert site.board.request(op="show", reader="front", text=text)["ok"]
    assert wait_for(site.board.relay, 10), "the door camera let the member in with it"


@SQLITE_ONLY
def test_the_code_page_is_limited_per_member(site: Site) -> None:
    from officepass.web.app import CODES_PER_MINUTE

    site.as_member("m-2", "second horse")
    answers = [site.client.get(f"/s/{STORE}/{DOOR}/code").status_code for _ in range(CODES_PER_MINUTE + 1)]
    assert answers == [200] * CODES_PER_MINUTE + [429]


@pytest.mark.parametrize(("limit", "ja", "en", "lead"), [(180, "最大3時間", "at most 3 hours", 15 * 60),
                                                         (1, "最大1分", "at most 1 minute", 15)])
def test_the_page_shows_the_doors_own_limit_and_warning(tmp_path: Path, limit: int, ja: str, en: str,
                                                        lead: int) -> None:
    """The stay limit and the warning time come from what the door publishes: a 3-hour or a 1-minute
    door shows its own rule, not the guide's 2 hours."""
    from datetime import datetime

    with running_site(tmp_path, f"sqlite:///{tmp_path / 'officepass.db'}",
                      door={"session_limit_minutes": limit, "auto_checkout_after_minutes": 0}) as site:
        site.as_member("m-1", "correct horse")
        assert wait_for(lambda: ja in site.client.get(f"/s/{STORE}/{DOOR}").text, 15), "from the door's seats"
        assert en in site.client.get(f"/s/{STORE}/{DOOR}").text
        assert site.press("check_in")[0] == 200
        found: list[re.Match[str]] = []

        def stay() -> bool:
            match = re.search(r'data-deadline="([^"]+)" data-warning-at="([^"]+)"',
                              site.client.get(f"/s/{STORE}/{DOOR}").text)
            found[:] = [match] if match else []
            return match is not None

        assert wait_for(stay, 15), "the session arrived"
        deadline, warning = (datetime.fromisoformat(found[0].group(i).replace("Z", "+00:00")) for i in (1, 2))
        assert (deadline - warning).total_seconds() == lead, "the door's own warning time"


@SQLITE_ONLY
def test_the_door_page_says_where_the_member_stands_and_the_trouble_screen_what_to_do(site: Site) -> None:
    site.as_member("m-1", "correct horse")
    assert wait_for(lambda: "空きあり" in site.client.get(f"/s/{STORE}/{DOOR}").text, 15), "○ with its words"
    # 入店する at a door that does not answer: the entering advice, with the office's mail.
    status, text = site.press("check_in", door="back")
    assert status == 504 and 'data-advice="entering"' in text and 'data-advice="leaving"' not in text
    assert f"mailto:{SUPPORT}" in text
    assert site.press("check_in")[0] == 200

    def page() -> str:
        return site.client.get(f"/s/{STORE}/{DOOR}").text

    assert wait_for(lambda: "data-local-time=" in page(), 15), "the stay's end, for the phone's own clock"
    assert "入店中（" in page() and "まで）" in page()
    assert site.press("checkout_begin")[0] == 200
    assert wait_for(lambda: "data-checking-out" in page(), 15), "the step left, said"
    assert "外に出てから" in page()
    # Checking out at a door that does not answer: the leaving advice, with the support number.
    status, text = site.press("checkout", door="back")
    assert 'data-advice="leaving"' in text and 'data-advice="entering"' not in text
    assert f"tel:{SUPPORT_PHONE}" in text


@SQLITE_ONLY
def test_the_console_pages_a_fleet_and_has_a_page_per_store_and_door(tmp_path: Path, database: str) -> None:
    """Hundreds of stores: the doors table pages (filters kept in the URL), doors and members are
    found by search, and each store and door has its own page (status, sessions, alarms, events)."""
    from officepass.fleet import record_status
    from wire.payloads import parse_status

    extra = {f"st-{n:03d}": ["main"] for n in range(120)}
    with running_site(tmp_path, database, extra_stores=extra) as site:
        status = {"online": True, "lock": "locked", "door": "closed", "alarms": [],
                  "readers": {"front": "ok"}, "clock_synced": True, "version": "0.1.0",
                  "ts": "2026-12-01T10:00:00.000Z"}
        with site.db.begin() as s:  # type: ignore[attr-defined]
            for store in extra:  # as the consumer stores the doors' retained status
                record_status(s, store, "main", parse_status(json.dumps(status).encode()), datetime.now(UTC))
        for n in range(60):  # one by one, as operators add them (each hash takes a moment)
            with site.db.begin() as s:  # type: ignore[attr-defined]
                add_member(s, f"x-{n:02d}", f"Extra {n}", "extra password")
        site.as_member("op", "operator pass")
        assert wait_for(lambda: f'data-door="{STORE}/{DOOR}"' in site.client.get("/console?door_q=shin").text,
                        10)
        first = site.client.get("/console?type=unlock").text
        assert first.count('data-door="st-') <= 50 and "page 1 of 3" in first
        following = re.search(r'href="(\?[^"]*doors_page=2)#doors"', first)
        assert following and "type=unlock" in following.group(1), "the filters stay in the URL"
        second = site.client.get("/console" + following.group(1).replace("&amp;", "&")).text
        assert "page 2 of 3" in second and 'data-door="st-000/main"' not in second
        found = site.client.get("/console?door_q=st-11").text
        assert sorted(re.findall(r'data-door="(st-\d+)/main"', found)) == [f"st-11{n}" for n in range(10)]
        members = site.client.get("/console?member_q=Extra 5").text
        assert re.findall(r'data-member="([^"]+)"', members) == ["x-05"] + [f"x-5{n}" for n in range(10)]
        assert site.client.get("/console?doors_page=x").status_code == 422
        assert site.client.get("/console?member_q=" + "m" * 65).status_code == 422
        # The door's day, and its own pages.
        site.as_member("m-1", "correct horse")
        assert site.press("check_in")[0] == 200
        site.as_member("op", "operator pass")
        store_page = site.client.get(f"/console/stores/{STORE}")
        assert store_page.status_code == 200
        assert wait_for(lambda: 'data-session="m-1"' in site.client.get(f"/console/stores/{STORE}").text, 10)
        text = site.client.get(f"/console/stores/{STORE}").text
        assert f'data-door="{STORE}/{DOOR}"' in text and "1F lounge" in text and "Quiet after 20:00" in text
        assert 'data-event="check_in"' in text
        door_page = site.client.get(f"/console/doors/{STORE}/{DOOR}").text
        assert "readers" in door_page and "front: ok" in door_page and 'data-event="check_in"' in door_page
        assert site.client.get(f"/console/doors/{STORE}/nowhere").status_code == 404
        assert site.client.get("/console/stores/nowhere").status_code == 404
        site.as_member("m-2", "second horse")
        assert site.client.get(f"/console/stores/{STORE}").status_code == 403
