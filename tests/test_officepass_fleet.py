"""The service's fleet state: events stored once, seq gaps, status and Last Will, seats, sessions;
on a real SQLite file and a real PostgreSQL, migrated with Alembic."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from officepass.db import engine_for, migrate, sessions
from officepass.fleet import (
    BadMessage,
    gaps,
    record_event,
    record_events,
    record_seats,
    record_session,
    record_status,
)
from officepass.models import Base, DoorRecord, EventRecord, LiveSession, StoreSeats
from tests.pg import postgres_cluster
from wire.payloads import DoorEvent, DoorOffline, Seats, SessionInfo, WireError, status_from_dict

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'officepass.db'}"
        migrate(url)
        yield engine_for(url)
        return
    with postgres_cluster() as url:
        migrate(url)
        eng = engine_for(url)
        yield eng
        eng.dispose()


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "feed_counter":  # its one row is the schema's, as the migration made it
                conn.execute(table.delete())


def event(seq: int, *, door: str = "main", epoch: str = "e1", type_: str = "unlock") -> DoorEvent:
    return DoorEvent.from_dict(body(seq, door=door, epoch=epoch, type_=type_))


def body(seq: int, *, door: str = "main", epoch: str = "e1", type_: str = "unlock") -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{door}/{epoch}/{seq}")), "seq": seq, "epoch": epoch,
            "ts": "2027-01-15T08:00:00.000Z", "store": "s1", "door": door, "type": type_, "member": None,
            "source": "button", "reason": None}


def stored(engine: Engine) -> tuple[set[str], list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    with sessions(engine)() as db:
        ids = set(db.execute(select(EventRecord.id)).scalars())
        return ids, gaps(db, "s1", "main"), gaps(db, "s1", "back")


def expected_gaps(seqs: set[int], epoch: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    if not seqs:
        return out
    missing = [s for s in range(min(seqs), max(seqs) + 1) if s not in seqs]
    for s in missing:
        if out and out[-1][2] == s - 1:
            out[-1] = (epoch, out[-1][1], s)
        else:
            out.append((epoch, s, s))
    return out


def test_a_redelivered_event_is_stored_once(engine: Engine) -> None:
    _clear(engine)
    with sessions(engine).begin() as db:
        assert record_event(db, event(1)) is True
    with sessions(engine).begin() as db:
        assert record_event(db, event(1)) is False
    assert stored(engine)[0] == {event(1).id}


def test_gaps_are_recorded_and_filled(engine: Engine) -> None:
    _clear(engine)
    for seq in (1, 2, 6, 9):
        with sessions(engine).begin() as db:
            record_event(db, event(seq))
    assert stored(engine)[1] == [("e1", 3, 5), ("e1", 7, 8)]
    for seq in (4, 8):
        with sessions(engine).begin() as db:
            record_event(db, event(seq))
    assert stored(engine)[1] == [("e1", 3, 3), ("e1", 5, 5), ("e1", 7, 7)]


@pytest.mark.parametrize(("bad", "field"), [
    ([], "payload"), ({"id": "x"}, "id"), ({**body(1), "seq": 0}, "seq"), ({**body(1), "seq": True}, "seq"),
    ({**body(1), "ts": "yesterday"}, "ts"), ({**body(1), "store": ""}, "store"),
    ({**body(1), "type": "party"}, "type"), ({**body(1), "source": None}, "source")])
def test_a_bad_event_is_refused_naming_the_field(bad: Any, field: str) -> None:
    with pytest.raises(WireError) as err:
        DoorEvent.from_dict(bad)
    assert err.value.field == field


STREAMS = st.tuples(
    st.sets(st.integers(1, 40), max_size=25),  # seqs of the main door that arrive
    st.sets(st.integers(1, 15), max_size=10),  # of the back door (another epoch too)
    st.integers(0, 2**32),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(STREAMS)
def test_any_shuffle_or_duplication_gives_the_same_state(engine: Engine, stream: Any) -> None:
    main_seqs, back_seqs, seed = stream
    events = [event(s) for s in main_seqs] + [event(s, door="back", epoch="e2") for s in back_seqs]
    rng = random.Random(seed)
    arrivals = events + rng.sample(events, k=len(events) // 2)  # QoS 1 redeliveries
    rng.shuffle(arrivals)
    _clear(engine)
    for body in arrivals:
        with sessions(engine).begin() as db:
            record_event(db, body)
    ids, main_gaps, back_gaps = stored(engine)
    assert ids == {e.id for e in events}
    assert main_gaps == expected_gaps(main_seqs, "e1")
    assert back_gaps == expected_gaps(back_seqs, "e2")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(STREAMS, st.integers(1, 40))
def test_in_batches_the_same_state_as_one_by_one(engine: Engine, stream: Any, batch_size: int) -> None:
    """The consumer writes batches (fleet.record_events): the same events stored, the same gaps."""
    main_seqs, back_seqs, seed = stream
    events = [event(s) for s in main_seqs] + [event(s, door="back", epoch="e2") for s in back_seqs]
    rng = random.Random(seed)
    arrivals = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(arrivals)
    _clear(engine)
    for start in range(0, len(arrivals), batch_size):
        with sessions(engine).begin() as db:
            record_events(db, arrivals[start:start + batch_size])
    ids, main_gaps, back_gaps = stored(engine)
    assert ids == {e.id for e in events}
    assert main_gaps == expected_gaps(main_seqs, "e1")
    assert back_gaps == expected_gaps(back_seqs, "e2")


def test_status_last_will_seats_and_sessions(engine: Engine) -> None:
    _clear(engine)
    status = {"online": True, "lock": "locked", "door": "closed", "alarms": [], "readers": {},
              "clock_synced": True, "version": "0.1.0", "ts": "2027-01-15T08:00:00.000Z"}
    with sessions(engine).begin() as db:
        record_status(db, "s1", "main", status_from_dict(status), NOW)
        seats = {"store": "s1", "capacity": 2, "occupied": 1, "available": 1, "symbol": "△",
                 "ts": "2027-01-15T08:00:00.000Z"}
        record_seats(db, Seats.from_dict(seats), NOW)
        record_session(db, "s1", "m-1", SessionInfo.from_dict({
            "member": "m-1", "state": "checked_in", "checked_in_at": "2027-01-15T08:00:00.000Z",
            "deadline": "2027-01-15T10:00:00.000Z", "overdue": False}))
    with sessions(engine).begin() as db:
        record_status(db, "s1", "main", DoorOffline(), NOW)  # the Last Will
        record_session(db, "s1", "m-1", None)  # the session closed: an empty retained message
    with sessions(engine)() as db:
        door = db.get(DoorRecord, ("s1", "main"))
        assert door is not None and door.online is False and door.status["lock"] == "locked"
        seats = db.get(StoreSeats, "s1")
        assert seats is not None and seats.seats["symbol"] == "△"
        assert db.get(LiveSession, ("s1", "m-1")) is None
    with pytest.raises(WireError):
        status_from_dict({"lock": "locked"})
    with pytest.raises(BadMessage), sessions(engine).begin() as db:  # a session under another's topic
        record_session(db, "s1", "m-2", SessionInfo.from_dict({
            "member": "m-1", "state": "checked_in", "checked_in_at": "2027-01-15T08:00:00.000Z",
            "deadline": "2027-01-15T10:00:00.000Z", "overdue": False}))


def test_the_schema_comes_from_the_migrations(engine: Engine) -> None:
    """Alembic's tables are the ORM's: a model change without a migration fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'again.db'}"
    migrate(url)
    migrate(url)
    with sessions(engine_for(url)).begin() as db:
        assert record_event(db, event(1)) is True


def test_writers_at_once_and_a_reader_following_the_feed_see_every_event_once(engine: Engine) -> None:
    """Two writers (two service instances) store batches at the same time, a third reads the feed by
    cursor all along: positions become visible in order, so the reader misses none and sees none
    twice (on PostgreSQL the writers really overlap; SQLite takes them one at a time)."""
    import threading

    from sqlalchemy.exc import OperationalError

    from officepass.feed import page

    _clear(engine)
    per_writer, batch = 600, 7
    done = threading.Event()
    failures: list[BaseException] = []

    def write(door: str) -> None:
        try:
            for start in range(1, per_writer + 1, batch):
                events = [event(s, door=door) for s in range(start, min(start + batch, per_writer + 1))]
                for attempt in range(50):
                    try:
                        with sessions(engine).begin() as db:
                            record_events(db, events)
                        break
                    except OperationalError:  # SQLite: the other writer holds the file
                        if attempt == 49:
                            raise
        except BaseException as exc:
            failures.append(exc)

    with sessions(engine)() as db:
        cursor = page(db, None, 1000).next  # what the earlier tests left is before this
    writers = [threading.Thread(target=write, args=(door,)) for door in ("w1", "w2")]
    for thread in writers:
        thread.start()
    seen: list[str] = []
    while True:
        finished = not any(t.is_alive() for t in writers)
        with sessions(engine)() as db:
            while True:
                got = page(db, cursor, 50)
                seen += [e["id"] for e in got.events]
                cursor = got.next
                if not got.events:
                    break
        if finished:
            break
    done.set()
    assert not failures, failures
    expected = {event(s, door=d).id for d in ("w1", "w2") for s in range(1, per_writer + 1)}
    assert len(seen) == len(set(seen)), "no event twice"
    assert set(seen) == expected, "none missed"
