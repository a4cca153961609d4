"""The fleet's alarms on a real SQLite file and a real PostgreSQL: raised from a door's status,
cleared by it, an instant relay_watchdog, the offline watch on its monotonic count, and the support
mail through a local SMTP server that is down at first (nothing lost, each alarm mailed once)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from officepass.alarms import OFFLINE, acknowledge, needing_attention, raise_alarm, sync_status, unmailed
from officepass.db import sessions
from officepass.fleet import record_status
from officepass.mail import SupportMail
from officepass.models import AlarmRecord
from officepass.watch import OfflineWatch
from tests.rig import wait_for
from tests.smtp_sink import SmtpSink
from tests.test_officepass_fleet import _clear, engine  # noqa: F401  (engine is a fixture)
from wire.payloads import DoorOffline, DoorStatus
from wire.vocab import DoorPosition, LockStatus

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


@pytest.fixture
def db(engine: Engine) -> Iterator[object]:  # noqa: F811
    _clear(engine)
    yield sessions(engine)

ONLINE = DoorStatus(LockStatus.LOCKED, DoorPosition.CLOSED, (), {}, True, "0.1.0", "2027-01-15T08:00:00.000Z")


def kinds(db: object, *, standing: bool = False) -> list[tuple[str, str]]:
    with db() as s:  # type: ignore[operator]
        rows = s.execute(select(AlarmRecord).order_by(AlarmRecord.id)).scalars()
        return [(r.door, r.kind) for r in rows if not standing or r.cleared is None]


def test_the_status_raises_and_clears_its_alarms(db: object) -> None:
    with db.begin() as s:  # type: ignore[attr-defined]
        opened = sync_status(s, "s1", "main", ["unlock_fault", "fire", "door_held"], NOW)
        assert sorted(r.kind for r in opened) == ["door_held", "unlock_fault"], "fire is an input"
        assert sync_status(s, "s1", "main", ["unlock_fault", "door_held"], NOW) == [], "raised once"
    with db.begin() as s:  # type: ignore[attr-defined]
        sync_status(s, "s1", "main", ["unlock_fault"], NOW + timedelta(seconds=5))
    assert kinds(db, standing=True) == [("main", "unlock_fault")]
    assert len(kinds(db)) == 2, "a cleared alarm stays until acknowledged"
    with db.begin() as s:  # type: ignore[attr-defined]
        sync_status(s, "s1", "main", [], NOW + timedelta(seconds=9))
        sync_status(s, "s1", "main", ["unlock_fault"], NOW + timedelta(seconds=20))  # a new fault
    assert [k for _, k in kinds(db)] == ["door_held", "unlock_fault", "unlock_fault"]


def test_relay_watchdog_is_instant_and_acknowledgement_is_once(db: object) -> None:
    with db.begin() as s:  # type: ignore[attr-defined]
        first = raise_alarm(s, "s1", "main", "relay_watchdog", NOW, instant=True)
        second = raise_alarm(s, "s1", "main", "relay_watchdog", NOW, instant=True)
        assert first is not None and second is not None and first.cleared == NOW, "each one is its own"
        ids = [first.id, second.id]
    with db.begin() as s:  # type: ignore[attr-defined]
        assert [r.id for r in needing_attention(s)] == sorted(ids, reverse=True)
        assert acknowledge(s, ids[0], "op", NOW) and not acknowledge(s, ids[0], "op2", NOW)
        assert not acknowledge(s, 999_999, "op", NOW)
        assert [r.id for r in needing_attention(s)] == [ids[1]]


def test_support_mail_waits_out_a_mail_server_that_is_down(db: object) -> None:
    with db.begin() as s:  # type: ignore[attr-defined]
        raise_alarm(s, "s1", "main", "unlock_fault", NOW)
        raise_alarm(s, "s1", "main", "door_forced", NOW)  # shown on the console, not mailed
    sink = SmtpSink()
    port = sink.port
    sink.stop()  # nobody listens there now
    mail = SupportMail(db, "127.0.0.1", port, "officepass@pass.test", "support@pass.test",  # type: ignore[arg-type]
                       "https://pass.test")
    assert mail.send_pending() is False, "the server is down: nothing is marked sent"
    with db() as s:  # type: ignore[operator]
        assert [r.kind for r in unmailed(s)] == ["unlock_fault"]
    sink = SmtpSink(port)  # the mail server comes back where it was
    try:
        assert mail.send_pending() is True and mail.send_pending() is True
        (to, message), = sink.wait(1, 5)
        assert to == ["support@pass.test"] and message["Subject"] == "[officepass] unlock_fault at s1/main"
        assert "https://pass.test/console#alarm-" in message.get_content()
        with db() as s:  # type: ignore[operator]
            assert unmailed(s) == []
    finally:
        sink.stop()


def test_a_door_offline_too_long_is_an_alarm_counted_on_the_monotonic_clock(db: object) -> None:
    told: list[bool] = []
    watch = OfflineWatch(db, after_seconds=300, on_alarm=lambda: told.append(True))  # type: ignore[arg-type]
    with db.begin() as s:  # type: ignore[attr-defined]
        record_status(s, "s1", "main", ONLINE, NOW)
        record_status(s, "s1", "main", DoorOffline(), NOW)  # its Last Will
    watch.look(1000.0)  # first seen offline
    watch.look(1299.0)
    assert kinds(db) == [] and told == []
    watch.look(1300.0)
    watch.look(1400.0)
    assert kinds(db) == [("main", OFFLINE)] and told == [True], "raised and told once"
    with db.begin() as s:  # type: ignore[attr-defined]
        record_status(s, "s1", "main", ONLINE, NOW)
    watch.look(1401.0)
    with db.begin() as s:  # type: ignore[attr-defined]
        record_status(s, "s1", "main", DoorOffline(), NOW)
    watch.look(1402.0)
    assert kinds(db) == [("main", OFFLINE)], "back online restarts the count"


def test_the_watch_and_the_mailer_run_as_threads(db: object) -> None:
    sink = SmtpSink()
    mail = SupportMail(db, "127.0.0.1", sink.port, "officepass@pass.test", "support@pass.test",  # type: ignore[arg-type]
                       "https://pass.test")
    watch = OfflineWatch(db, after_seconds=1, on_alarm=mail.nudge)  # type: ignore[arg-type]
    mail.start()
    watch.start()
    try:
        with db.begin() as s:  # type: ignore[attr-defined]
            record_status(s, "s1", "main", DoorOffline(), NOW)
        assert sink.wait(1, 10), "offline alarm mailed"
        assert wait_for(lambda: kinds(db) == [("main", OFFLINE)], 5)
    finally:
        watch.stop()
        mail.stop()
        sink.stop()


def test_two_instances_mail_each_alarm_once() -> None:
    """Several service instances on one PostgreSQL: each alarm is mailed by one of them, once.
    (SQLite serves one instance: it has no row locks to share the work by.)"""
    import threading

    from officepass.db import engine_for, migrate
    from tests.pg import postgres_cluster

    sink = SmtpSink()
    with postgres_cluster() as url:
        migrate(url)
        db = sessions(engine_for(url))
        with db.begin() as s:
            for door in range(6):
                raise_alarm(s, "s1", f"d{door}", "unlock_fault", NOW)
        mailers = [SupportMail(db, "127.0.0.1", sink.port, "officepass@pass.test", "support@pass.test",
                               "https://pass.test") for _ in range(2)]
        start = threading.Barrier(2)

        def send(mail: SupportMail) -> None:
            start.wait()
            mail.send_pending()

        rounds = [threading.Thread(target=send, args=(m,)) for m in mailers]
        try:
            for r in rounds:
                r.start()
            for r in rounds:
                r.join(30)
            assert sink.wait(6, 10)
            subjects = sorted(m["Subject"] for _, m in sink.messages)
            assert subjects == sorted(f"[officepass] unlock_fault at s1/d{d}" for d in range(6)), "once each"
            with db() as s:
                assert unmailed(s) == []
        finally:
            sink.stop()
