"""Several service instances, one fleet (PostgreSQL): a change made through one instance moves the
live pages of another (the notifier's NOTIFY/LISTEN), with no page polling the database; and a
listener that lost its connection catches up. Real instances as `officepass serve` composes them, on
the closed broker and one PostgreSQL."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from officepass.db import engine_for, migrate, sessions
from officepass.keys import KeyRing
from officepass.members import add_member, add_store
from officepass.notifier import Change
from officepass.service import Service
from tests.closed_broker import ClosedBroker, identities_for
from tests.pg import new_database
from tests.rig import wait_for
from tests.test_officepass_web import database, postgres  # noqa: F401  (fixtures)


@contextmanager
def two_instances(tmp_path: Path, url: str) -> Iterator[tuple[Service, Service]]:
    migrate(url)
    db = sessions(engine_for(url))
    with db.begin() as s:
        add_member(s, "op", "Operator", "operator pass", role="operator")
        add_store(s, "shinjuku-3", "Shinjuku 3", ["main"])
    closed = ClosedBroker(tmp_path, identities_for({"shinjuku-3": ["main"]}, instances=("a", "b")))
    ring = KeyRing(tmp_path / "keys")
    ring.new("svc1")
    services = [Service(db, ring, closed.service_access(name), "test-secret-" + "x" * 32,
                        base_url="http://pass.test") for name in ("a", "b")]
    try:
        for service in services:
            assert service.start()
        yield services[0], services[1]
    finally:
        for service in services:
            service.stop()
        closed.stop()


def login(client: TestClient) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token
    answer = client.post("/login", data={"member": "op", "password": "operator pass", "csrf": token.group(1),
                                         "next": "/"}, follow_redirects=False)
    assert answer.status_code == 303


@contextmanager
def console_stream(client: TestClient) -> Iterator[queue.Queue[str]]:
    """The console's event stream, read on a thread of its own: each `data:` line as it comes."""
    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            with client.stream("GET", "/live/console") as answer:
                for line in answer.iter_lines():
                    if line.startswith("data:"):
                        lines.put(line)
                    if stop.is_set():
                        return
        except Exception:
            if not stop.is_set():  # the stream broke while the test still reads it: say so
                lines.put("broken")
                raise

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield lines
    finally:
        stop.set()


def test_a_change_through_one_instance_moves_the_console_of_the_other(
        tmp_path: Path, postgres: str) -> None:  # noqa: F811
    url = new_database(postgres)
    with two_instances(tmp_path, url) as (a, b), TestClient(a.app) as on_a, TestClient(b.app) as on_b:
        assert wait_for(b.notifier.listening.is_set, 10) and wait_for(a.notifier.listening.is_set, 10)
        login(on_a)
        login(on_b)
        with console_stream(on_b) as seen_on_b:
            first = seen_on_b.get(timeout=10)  # the page's first snapshot
            before = b.notifier.version(Change.CONSOLE)
            token = re.search(r'name="csrf" value="([^"]+)"', on_a.get("/console").text)
            assert token
            form = {"member": "m-7", "name": "Nao", "password": "nao's pass", "csrf": token.group(1)}
            added = on_a.post("/console/members", data=form, follow_redirects=False)
            assert added.status_code == 303
            moved = seen_on_b.get(timeout=10)
            assert moved != first, "instance b's console heard of a's change"
            assert b.notifier.version(Change.CONSOLE) > before
        # A listener whose connection was cut (a database restart, a failover) reconnects and
        # counts everything as changed, since it may have missed a notification meanwhile.
        seats_before = b.notifier.version(Change.SEATS)
        with engine_for(url).connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"))
            conn.commit()
        assert wait_for(lambda: b.notifier.version(Change.SEATS) > seats_before, 15)
        assert wait_for(b.notifier.listening.is_set, 10)
