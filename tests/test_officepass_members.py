"""Members, stores and the service's link to a real door (real mosquitto, `doorctl run --sim`):
an app button's command and the door's answer, the unlock-trouble case (no answer), and a
disable that the door applies as a signed revocation list."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from officepass.connection import ServiceConnection
from officepass.db import engine_for, migrate, sessions
from officepass.keys import KeyRing
from officepass.link import DoorLink
from officepass.members import MemberProblem, add_member, add_store, check_password, disable_member
from officepass.models import Member
from officepass.revocations import RevocationPublisher
from tests.closed_broker import ClosedBroker, identities_for
from tests.procs import BoardProcess, DoorProcess, door_trusting_service
from wire.rules import DEFAULT_PREFIX
from wire.vocab import Act


def test_accounts_argon2_and_disable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate(url)
    db = sessions(engine_for(url))
    with db.begin() as s:
        add_member(s, "m-1", "Aiko", "correct horse")
        add_member(s, "op", "Operator", "operator pass", role="operator")
        add_store(s, "shinjuku-3", "Shinjuku 3", ["main"], areas="1F lounge", rules="quiet after 20:00")
    with db() as s:
        member = s.get(Member, "m-1")
        assert member is not None and member.password_hash.startswith("$argon2id$")
        assert check_password(s, "m-1", "correct horse") is not None
        assert check_password(s, "m-1", "wrong horse") is None and check_password(s, "nobody", "x") is None
    for bad in (("bad id!", "x", "long enough"), ("m-2", "x", "short")):
        with pytest.raises(MemberProblem), db.begin() as s:
            add_member(s, *bad)
    with db.begin() as s:
        first = disable_member(s, "m-1")
    with db.begin() as s:
        add_member(s, "m-3", "Ben", "another pass")
        second = disable_member(s, "m-3")
    assert (first.version, first.members) == (1, {"ids": ["m-1"]})
    assert (second.version, second.members) == (2, {"ids": ["m-1", "m-3"]}), "a newer list holds everyone"
    with db() as s:
        assert check_password(s, "m-1", "correct horse") is None, "a disabled member cannot log in"


@pytest.fixture
def door_and_link(tmp_path: Path) -> Iterator[tuple[KeyRing, DoorLink, BoardProcess, DoorProcess]]:
    ring = KeyRing(tmp_path / "keys")
    key = ring.new("svc1")
    closed = ClosedBroker(tmp_path, identities_for({"shinjuku-3": ["main"]}))
    board, door = door_trusting_service(tmp_path, closed.door_mqtt("shinjuku-3", "main"), key.kid,
                                        key.public_b64)
    access = closed.service_access()
    connection = ServiceConnection(access.host, access.port, access.credentials)
    link = DoorLink(connection, DEFAULT_PREFIX)
    assert connection.start()
    yield ring, link, board, door
    connection.stop()
    door.stop()
    board.close()
    closed.stop()


Fixture = tuple[KeyRing, DoorLink, BoardProcess, DoorProcess]


def test_an_app_button_gets_the_doors_answer(door_and_link: Fixture) -> None:
    ring, link, board, _door = door_and_link
    answer = link.send("shinjuku-3", "main", ring.command("m-1", Act.CHECK_IN, "shinjuku-3"))
    assert answer is not None and answer.ok is True and answer.result == "check_in"
    assert board.relay(), "入店する unlocked the door"
    again = link.send("shinjuku-3", "main", ring.command("m-2", Act.UNLOCK, "shinjuku-3"))
    assert again is not None and again.reason == "not_checked_in"
    started = time.monotonic()
    silent = link.send("shinjuku-3", "no-such-door", ring.command("m-1", Act.UNLOCK, "shinjuku-3"), timeout=1)
    assert silent is None and time.monotonic() - started >= 1, "no answer: the unlock-trouble screen"


def test_a_disabled_member_is_revoked_at_the_door(door_and_link: Fixture) -> None:
    ring, link, _board, door = door_and_link
    link.publish_revocation(ring.revocation(1, ["m-9"]))
    door.wait_line("revocation list version 1 applied", 15)
    answer = link.send("shinjuku-3", "main", ring.command("m-9", Act.CHECK_IN, "shinjuku-3"))
    assert answer is not None and answer.reason == "revoked"


def test_the_cli_adds_and_disables_and_the_door_hears(door_and_link: Fixture, tmp_path: Path) -> None:
    import subprocess
    import sys

    ring, link, _board, door = door_and_link
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    run = [sys.executable, "-m", "officepass.cli"]
    added = subprocess.run([*run, "member", "add", "m-5", "--password-stdin", "--db", db],
                           input="a long password\n", capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    store = subprocess.run([*run, "store", "add", "shinjuku-3", "--door", "main", "--db", db],
                           capture_output=True, text=True)
    assert store.returncode == 0, store.stderr
    off = subprocess.run([*run, "member", "disable", "m-5", "--db", db], capture_output=True, text=True)
    assert off.returncode == 0 and "version 1 recorded" in off.stdout, off.stderr
    # The running service's publisher sends what the command line committed (its poll, here 0.2 s).
    from officepass.db import engine_for, sessions

    publisher = RevocationPublisher(sessions(engine_for(db)),
                                    lambda v, ids: link.publish_revocation(ring.revocation(v, ids)),
                                    poll_seconds=0.2)
    publisher.start()
    try:
        door.wait_line("revocation list version 1 applied: 1 members", 15)
    finally:
        publisher.stop()


def test_disables_at_once_on_postgresql_each_get_their_own_version(tmp_path: Path) -> None:
    """Two instances disabling members at the same moment both read the same newest version; the one
    that commits second conflicts on it and takes the next: no version is used twice."""
    import threading

    from sqlalchemy import select

    from officepass.members import disable_committed
    from officepass.models import Revocation
    from tests.pg import postgres_cluster

    with postgres_cluster() as url:
        migrate(url)
        db = sessions(engine_for(url))
        with db.begin() as s:
            for i in range(8):
                add_member(s, f"m-{i}", "Member", "long enough pass")
        start = threading.Barrier(8)
        versions: list[int] = []

        def disable(member: str) -> None:
            start.wait()
            versions.append(disable_committed(db, member).version)

        threads = [threading.Thread(target=disable, args=(f"m-{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(versions) == list(range(1, 9)), versions
        with db() as s:
            newest = s.execute(select(Revocation).order_by(Revocation.version.desc())).scalars().first()
            everyone = sorted(f"m-{i}" for i in range(8))
            assert newest is not None and sorted(newest.members["ids"]) == everyone, "the newest: everyone"
