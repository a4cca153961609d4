"""The pages under load and attack, as a security review on loopback found them: headers, bad query
values, streams limited to what exists, a language switch that keeps the door, files only the service
may read. Against the service on the closed broker with a real door."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_officepass_web import (  # noqa: F401  (database and postgres are fixtures)
    DOOR,
    STORE,
    Site,
    database,
    postgres,
    running_site,
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path, f"sqlite:///{tmp_path / 'officepass.db'}") as running:
        yield running


def test_every_page_carries_the_security_headers(site: Site) -> None:
    for path in ("/login", "/static/door.js"):
        headers = site.client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0], "no inline script"
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin"
    site.as_member("m-1", "correct horse")
    for path in ("/", f"/s/{STORE}/{DOOR}", f"/s/{STORE}/{DOOR}/code", "/scan"):
        page = site.client.get(path).text
        assert not re.search(r"<script>(?!\s*</script>)", page), f"{path}: an inline script (CSP refuses it)"


def test_bad_query_values_get_422_and_streams_only_existing_doors(site: Site) -> None:
    site.as_member("op", "operator pass")
    for hours in ("²", "99999999999", "-1", "0", "1e3"):
        response = site.client.get(f"/console?hours={hours}")
        assert response.status_code == 422, (hours, response.status_code)
        assert "hours must be a whole number" in response.text
    assert site.client.get("/console?hours=24").status_code == 200
    assert site.client.get(f"/console?member={'x' * 65}").status_code == 422
    assert site.client.get("/live/door/no-such/door").status_code == 404
    assert site.client.get(f"/live/door/{STORE}/nope").status_code == 404


def test_the_language_switch_on_the_login_page_keeps_the_door(site: Site) -> None:
    site.client.cookies.clear()
    page = site.client.get(f"/login?next=/s/{STORE}/{DOOR}").text
    found = re.search(r'name="next" value="([^"]+)"', page)
    assert found and found.group(1) == f"/login?next=/s/{STORE}/{DOOR}", "the form keeps where the QR led"
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    form = {"lang": "en", "next": found.group(1), "csrf": token.group(1)}
    switched = site.client.post("/language", data=form, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == f"/login?next=/s/{STORE}/{DOOR}"
    for evil in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
        away = site.client.post("/language", data={"lang": "ja", "next": evil, "csrf": token.group(1)},
                                follow_redirects=False)
        assert away.headers["location"] == "/", evil


def test_the_database_and_the_session_secret_are_the_services_alone(tmp_path: Path) -> None:
    import subprocess
    import sys

    from officepass.db import engine_for

    db = tmp_path / "fresh.db"
    engine_for(f"sqlite:///{db}").dispose()
    assert db.stat().st_mode & 0o777 == 0o600, "made 0600: it holds password hashes"
    db.chmod(0o644)
    engine_for(f"sqlite:///{db}").dispose()
    assert db.stat().st_mode & 0o777 == 0o600, "a loosened one is tightened"
    secret = tmp_path / "session.key"
    secret.write_text("x" * 48)
    secret.chmod(0o644)
    settings = tmp_path / "officepass.toml"
    settings.write_text(f'[service]\nbase_url = "http://x"\ndatabase = "sqlite:///{db}"\n'
                        f'secret_file = "{secret}"\nkeys = "{tmp_path / "keys"}"\n'
                        '[mqtt]\nhost = "127.0.0.1"\ntls = false\n')
    served = subprocess.run([sys.executable, "-m", "officepass.cli", "serve", "--config", str(settings)],
                            capture_output=True, text=True, timeout=60)
    assert served.returncode == 2 and "service.secret_file" in served.stderr and "chmod 600" in served.stderr
    assert "Traceback" not in served.stderr


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_two_hundred_open_streams_and_the_pages_still_answer(tmp_path: Path, database: str) -> None:  # noqa: F811
    """Each open page's stream used to keep a database session for its whole life: 15 of them took
    the pool and stalled every page. Now 200 stay open and a page answers as ever."""
    import socket
    import time
    import urllib.request

    from hwsim.broker import free_port
    from tests.test_officepass_browser import serving

    port = free_port()
    with running_site(tmp_path, database) as site, serving(site, port):
        site.as_member("m-1", "correct horse")
        cookie = f"officepass={site.client.cookies.get('officepass')}"
        streams: list[socket.socket] = []
        try:
            for _ in range(200):
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                s.sendall(f"GET /live/seats HTTP/1.1\r\nHost: pass\r\nCookie: {cookie}\r\n\r\n".encode())
                streams.append(s)
            for s in streams:  # the barrier: every one is open and has had its first snapshot
                got = b""
                while b"event: seats" not in got:
                    chunk = s.recv(4096)
                    assert chunk, "a stream closed"
                    got += chunk
            took = []
            for _ in range(20):
                started = time.monotonic()
                request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Cookie": cookie})
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 200
                took.append(time.monotonic() - started)
            # A bound for a loaded 2-core machine, far under the 25.9 s this took; the figure itself
            # is bench/service's.
            assert max(took) < 2.0, took
        finally:
            for s in streams:
                s.close()


def test_every_command_takes_the_serve_file_and_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    def officepass(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "officepass.cli", *args], capture_output=True, text=True,
                              input=stdin, timeout=60, cwd=tmp_path, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    # The README's commands as a fresh operator types them, before anything exists.
    missing = officepass("store", "add", STORE, "--door", DOOR, "--db", "/nonexistent/dir/op.db")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "/nonexistent/dir/op.db" in missing.stderr
    plain = officepass("store", "add", STORE, "--door", DOOR, "--db", "./op.db")
    assert plain.returncode == 0, "a plain path is a SQLite file"
    settings = tmp_path / "officepass.toml"
    settings.write_text(f'[service]\nbase_url = "http://x"\ndatabase = "sqlite:///{tmp_path / "op.db"}"\n'
                        f'keys = "{tmp_path / "keys"}"\n[mqtt]\nhost = "127.0.0.1"\n')
    added = officepass("member", "add", "m-1", "--password-stdin", "--config", str(settings),
                       stdin="long enough\n")
    assert added.returncode == 0, added.stderr
    again = officepass("store", "add", STORE, "--door", DOOR, "--config", str(settings))
    assert again.returncode == 2 and "exists already" in again.stderr, "the same database, from the file"
    assert officepass("keys", "new", "k1", "--config", str(settings)).returncode == 0
    assert (tmp_path / "keys" / "k1.key").stat().st_mode & 0o777 == 0o600
    assert officepass("member", "disable", "m-1", "--config", str(settings)).returncode == 0
    broken = officepass("member", "disable", "m-1", "--config", str(tmp_path / "nope.toml"))
    assert broken.returncode == 2 and "nope.toml" in broken.stderr
    assert (tmp_path / "op.db").stat().st_mode & 0o777 == 0o600


def test_logging_out_ends_the_session_and_a_copied_cookie_opens_nothing(site: Site) -> None:
    site.client.cookies.clear()
    before = re.search(r'name="csrf" value="([^"]+)"', site.client.get("/login").text)
    site.as_member("m-1", "correct horse")
    after = re.search(r'name="csrf" value="([^"]+)"', site.client.get("/").text)
    assert before and after and before.group(1) != after.group(1), "the CSRF token rotates at login"
    copied = site.client.cookies.get("officepass")
    assert site.client.get(f"/s/{STORE}/{DOOR}/code").status_code == 200
    assert site.post("/logout", {}, page="/") == 303
    site.client.cookies.clear()
    site.client.cookies.set("officepass", copied or "")
    stolen = site.client.get(f"/s/{STORE}/{DOOR}/code", follow_redirects=False)
    assert stolen.status_code == 303 and stolen.headers["location"].startswith("/login"), "ended at logout"
    # A disable ends every login of the member at once.
    site.as_member("m-2", "second horse")
    bens = site.client.cookies.get("officepass")
    site.as_member("op", "operator pass")
    assert site.post("/console/members/m-2/disable", {}) == 303
    site.client.cookies.clear()
    site.client.cookies.set("officepass", bens or "")
    assert site.client.get("/", follow_redirects=False).status_code == 303


def test_guesses_at_once_or_from_claimed_addresses_do_not_pass_the_login_limit(site: Site) -> None:
    import threading
    import urllib.error
    import urllib.parse
    import urllib.request

    import uvicorn

    from hwsim.broker import free_port
    from tests.rig import wait_for

    port = free_port()
    # As `officepass serve` runs it: forwarded headers believed from no one (none configured).
    server = uvicorn.Server(uvicorn.Config(site.app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                           log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, 10)
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        page = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        codes: list[int] = []

        def guess(i: int) -> None:
            body = urllib.parse.urlencode({"member": "m-1", "password": f"guess {i}", "csrf": token.group(1),
                                           "next": "/"}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/login", data=body,
                                             headers={"X-Forwarded-For": f"10.0.0.{i}"})  # a new "address"
            try:
                codes.append(opener.open(request).status)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)

        guesses = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
        for g in guesses:
            g.start()
        for g in guesses:
            g.join(30)
        assert sorted(codes).count(401) == 5 and codes.count(429) == 7, codes
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_services_broker_keys_are_checked_and_named_like_the_doors(tmp_path: Path) -> None:
    import subprocess
    import sys

    secret = tmp_path / "broker.password"
    secret.write_text("pw\n")
    secret.chmod(0o644)
    settings = tmp_path / "officepass.toml"
    settings.write_text(f'[service]\nbase_url = "http://x"\ndatabase = "sqlite:///{tmp_path / "s.db"}"\n'
                        f'keys = "{tmp_path / "keys"}"\nsecret_file = "{tmp_path / "session.key"}"\n'
                        f'[mqtt]\nhost = "127.0.0.1"\nca_file = "{tmp_path / "no-ca.pem"}"\n'
                        f'username = "door/s1/main"\npassword_file = "{secret}"\n'
                        'topic_prefix = "officepass/v1/"\n')
    served = subprocess.run([sys.executable, "-m", "officepass.cli", "serve", "--config", str(settings)],
                            capture_output=True, text=True, timeout=60)
    assert served.returncode == 2 and "Traceback" not in served.stderr
    for named in ("mqtt.username: 'door/s1/main' is not a service identity", "mqtt.password_file:",
                  "readable by others", "mqtt.topic_prefix: ends with /"):
        assert named in served.stderr, (named, served.stderr)
    secret.chmod(0o600)
    fixed = settings.read_text().replace("door/s1/main", "svc/a").replace("officepass/v1/", "officepass/v1")
    settings.write_text(fixed)
    served = subprocess.run([sys.executable, "-m", "officepass.cli", "serve", "--config", str(settings)],
                            capture_output=True, text=True, timeout=60)
    assert served.returncode == 2
    assert f"mqtt.ca_file: file {tmp_path / 'no-ca.pem'} does not exist" in served.stderr, served.stderr
