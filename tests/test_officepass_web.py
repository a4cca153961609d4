"""The member app over HTTP against a real door (`doorctl run --sim`), a real mosquitto and the fleet
consumer: the store guide's flow, the guide's refusals, the unlock-trouble screen, CSRF, the login
limit and the operator console. (Browser tests with Playwright and Chromium are still to come.)"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hwsim.broker import Broker
from officepass.consumer import FleetConsumer
from officepass.db import engine_for, migrate, sessions
from officepass.keys import KeyRing
from officepass.link import DoorLink
from officepass.members import add_member, add_store
from officepass.models import LiveSession
from officepass.web.app import create_app
from tests.procs import BoardProcess, door_trusting_service
from tests.rig import wait_for

STORE, DOOR = "shinjuku-3", "main"


class Site:
    def __init__(self, client: TestClient, board: BoardProcess, db: object, app: object) -> None:
        self.client, self.board, self.db, self.app = client, board, db, app

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


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    broker = Broker(tmp_path)
    ring = KeyRing(tmp_path / "keys")
    key = ring.new("svc1")
    url = f"sqlite:///{tmp_path / 'officepass.db'}"
    migrate(url)
    db = sessions(engine_for(url))
    with db.begin() as s:
        add_member(s, "m-1", "Aiko", "correct horse")
        add_member(s, "m-2", "Ben", "second horse")
        add_member(s, "m-3", "Chika", "third horse")
        add_member(s, "op", "Operator", "operator pass", role="operator")
        add_store(s, STORE, "Shinjuku 3", [DOOR, "back"], areas="1F lounge", rules="Quiet after 20:00")
    board, door = door_trusting_service(
        tmp_path, broker.port, key.kid, key.public_b64, door={"store": STORE, "name": DOOR, "seats": 2},
        lock={"relay_pin": "GPIO17", "exit_button_pin": "GPIO22", "unlock_seconds": 1})
    consumer = FleetConsumer(db, "127.0.0.1", broker.port, "officepass/v1", "officepass-web-test")
    consumer.start()
    link = DoorLink("127.0.0.1", broker.port, "officepass/v1")
    assert link.start()
    app = create_app(db, ring, link, "test-secret-" + "x" * 32, secure_cookie=False)
    with TestClient(app) as client:
        yield Site(client, board, db, app)
    link.stop()
    consumer.stop()
    door.stop()
    board.close()
    broker.stop()


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


def test_no_answer_is_the_trouble_screen(site: Site) -> None:
    assert site.login("m-1", "correct horse") == 303
    started = time.monotonic()
    status, text = site.press("check_in", door="back")  # a door that does not answer
    assert status == 504 and "他の店舗をご利用いただき" in text and "サポートへお電話ください" in text
    assert time.monotonic() - started >= 5


def test_forms_need_their_csrf_token(site: Site) -> None:
    assert site.login("m-1", "correct horse") == 303
    forged = site.client.post(f"/s/{STORE}/{DOOR}/act", data={"act": "check_in", "csrf": "forged"})
    assert forged.status_code == 403
    assert not site.board.relay()


def test_logins_are_limited(site: Site) -> None:
    assert [site.login("m-1", f"guess {i}") for i in range(5)] == [401] * 5
    assert site.login("m-1", "correct horse") == 429, "even the right password waits out the limit"


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


def test_serve_answers_on_its_port(tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.request

    from hwsim.broker import free_port

    broker = Broker(tmp_path)
    port = free_port()
    settings = tmp_path / "officepass.toml"
    settings.write_text(f'[service]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}"\n'
                        f'database = "sqlite:///{tmp_path / "s.db"}"\nkeys = "{tmp_path / "keys"}"\n'
                        f'secret_file = "{tmp_path / "secret"}"\n'
                        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    server = subprocess.Popen([sys.executable, "-m", "officepass.cli", "serve", "--config", str(settings)],
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
    finally:
        server.terminate()
        server.wait(10)
        broker.stop()
