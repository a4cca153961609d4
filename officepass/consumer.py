"""One consumer keeps every door's state from MQTT in the database (contract §8).

Events come through a shared subscription, so service instances split them; retained state
(status with its Last Will, seats, sessions) through ordinary subscriptions, since brokers send
no retained messages to shared ones. paho's thread only queues; one worker thread writes them in
batches (one transaction for up to BATCH messages or BATCH_SECONDS; a retained message in a
savepoint of its own, the batch's events in a few statements together), acknowledges each only once
its batch committed, and a bad message is logged and skipped, never fatal.

What waits here is not bounded by the Receive Maximum the connection asks for: mosquitto 2.0.11,
measured, keeps to it until the first acknowledgements and then sends several thousand more
unacknowledged messages (under bench/service's load, up to 38,000 waited while the writer caught
up). They are small (an event is a few hundred bytes), and none is acknowledged before it is stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from officepass.alarms import MAILED, OFFLINE, RELAY_WATCHDOG, clear_alarm, raise_alarm, sync_status
from officepass.connection import ServiceConnection
from officepass.fleet import (
    BadMessage,
    record_events,
    record_lost,
    record_seats,
    record_session,
    record_status,
)
from officepass.inbox import BatchInbox
from officepass.models import AlarmRecord
from officepass.notifier import Change
from wire.payloads import (
    DoorEvent,
    DoorOffline,
    DoorStatus,
    ReplayResult,
    Seats,
    SessionInfo,
    WireError,
    parse_session,
    parse_status,
)
from wire.topics import Kind, Topic, Topics
from wire.vocab import EventType

log = logging.getLogger("officepass.consumer")

# A batch's fixed cost (the feed counter, the lookups, the commit) shared by more events: at 500
# rather than 200, the writer's CPU per event fell from about 127 to 96 us on PostgreSQL (measured).
BATCH = 500  # messages written in one transaction at most ...
BATCH_SECONDS = 0.02  # ... gathered for at most this long after the first
WARN_AFTER = 5  # refusals of one batch before the log says so (then at 20, and every 100)
# What a stored message of each kind changes on the pages.
CHANGES: dict[str, tuple[Change, ...]] = {
    Kind.EVENTS.value: (Change.CONSOLE,),
    Kind.STATUS.value: (Change.DOORS, Change.CONSOLE),
    Kind.SEATS.value: (Change.SEATS, Change.CONSOLE),
    Kind.SESSION.value: (Change.CONSOLE,),
    Kind.REPLAY_RESULT.value: (Change.CONSOLE,),
}

class FleetConsumer:
    """Rides on the instance's connection: subscribes to every door's events (shared) and retained
    state, queues what arrives, writes it on its own thread, and acknowledges each message once it
    is stored (the broker sends it again otherwise)."""

    def __init__(self, sessions: Callable[[], Session], connection: ServiceConnection, prefix: str,
                 on_alarm: Callable[[], None] = lambda: None,
                 on_change: Callable[[set[Change]], None] = lambda changes: None) -> None:
        self._sessions = sessions
        self._on_alarm = on_alarm  # an alarm support must hear of was raised (the mailer wakes)
        self._on_change = on_change  # what the batch changed, once committed (the live pages)
        self.topics = Topics(prefix)
        self.connection = connection
        self.stored: Counter[str] = Counter()  # messages written, by kind (events, status, ...)
        # One transaction for up to BATCH messages, gathered for up to BATCH_SECONDS after the
        # first, so the database's commit cost is shared.
        self._inbox: BatchInbox[mqtt.MQTTMessage] = BatchInbox(BATCH, BATCH_SECONDS)
        for topic_filter in (self.topics.all_events_shared(), *self.topics.all_retained(),
                             self.topics.all_replay_results()):
            connection.subscribe(topic_filter, self._inbox.put)
        self._worker = threading.Thread(target=self._work, name="fleet-writer", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.close()
        self._worker.join(10)

    def drained(self, timeout: float) -> bool:
        """True once every message received so far is written (False after `timeout` seconds)."""
        end = time.monotonic() + timeout
        while self._inbox.unfinished:
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def _work(self) -> None:
        while batch := self._inbox.take():
            try:
                self._write_batch_retrying(batch)
            except Exception:
                # Not acknowledged: the broker sends them again when this consumer reconnects.
                log.exception("a batch of %d messages was not stored", len(batch))
            finally:
                self._inbox.finished(len(batch))

    def _write_batch_retrying(self, batch: list[mqtt.MQTTMessage]) -> None:
        """The database can refuse the batch for a while: another writer holds it (a page's disable,
        the mailer; on SQLite one long write), or it is restarting. The batch is written again, whole,
        with backoff, until it is stored or the consumer stops: its messages are not acknowledged
        meanwhile, and the broker would send them again only after a reconnect, so giving up here
        would leave them unstored until then."""
        attempt = 0
        while True:
            try:
                self._write_batch(batch)
                return
            except OperationalError as exc:
                attempt += 1
                if self._stopping.is_set():
                    raise
                wait = min(0.05 * 2 ** min(attempt, 7), 5.0)
                log_at = log.warning if attempt in (WARN_AFTER, 20) or attempt % 100 == 0 else log.debug
                log_at("the database refused a batch of %d messages (%s); writing it again in %.2f s",
                       len(batch), str(exc).splitlines()[0], wait)
                self._stopping.wait(wait)

    def _write_batch(self, batch: list[mqtt.MQTTMessage]) -> None:
        """Write the batch in one transaction, each message in a savepoint of its own (a bad one is
        dropped alone); acknowledge every message only once the transaction committed."""
        raised: list[AlarmRecord | None] = []
        stored: Counter[str] = Counter()
        now = datetime.now(UTC)
        events: list[DoorEvent] = []
        with self._sessions() as db, db.begin():
            for message in batch:
                kind = self._write(db, message.topic, bytes(message.payload), now, raised, events)
                if kind is not None:
                    stored[kind] += 1
            # The batch's events together: a few queries for all of them (fleet.record_events).
            for event in record_events(db, events):
                if event.type is EventType.RELAY_WATCHDOG:
                    raised.append(raise_alarm(db, event.store, event.door, RELAY_WATCHDOG, now, instant=True))
        for message in batch:
            self.connection.ack(message)  # written: the broker may forget it
        self.stored.update(stored)
        self._on_change({change for kind in stored for change in CHANGES.get(kind, ())})
        if any(r is not None and r.kind in MAILED for r in raised):
            self._on_alarm()

    def _write(self, db: Session, topic: str, payload: bytes, now: datetime,
               raised: list[AlarmRecord | None], events: list[DoorEvent]) -> str | None:
        """One message into the batch's transaction (an event: into `events`, stored with the
        batch's others); the kind taken, or None when it was dropped."""
        parsed = self.topics.parse(topic)
        if parsed is None:
            return None
        try:
            message = _read(parsed, payload)
        except (WireError, BadMessage) as exc:
            log.warning("ignored a message on %s: %s", topic, exc)
            return None
        if message is _NOT_OURS:
            return None
        if isinstance(message, DoorEvent):  # stored with the batch's other events, no savepoint needed
            events.append(message)
            return str(parsed.kind)
        alarms: list[AlarmRecord | None] = []
        try:
            with db.begin_nested():
                match message:
                    case DoorStatus() | DoorOffline() as status:
                        assert parsed.store is not None and parsed.door is not None
                        record_status(db, parsed.store, parsed.door, status, now)
                        if isinstance(status, DoorStatus):
                            clear_alarm(db, parsed.store, parsed.door, OFFLINE, now)
                            alarms += sync_status(db, parsed.store, parsed.door, list(status.alarms), now)
                    case Seats() as seats:
                        record_seats(db, seats, now)
                    case _SessionMessage(store, member, session):
                        record_session(db, store, member, session)
                    case ReplayResult() as result:
                        assert parsed.store is not None and parsed.door is not None
                        gone = record_lost(db, parsed.store, parsed.door, result, now)
                        if gone:
                            log.warning("door %s/%s no longer holds %d events of %s %d-%d: lost for good",
                                        parsed.store, parsed.door, gone, result.epoch, result.first,
                                        result.last)
        except BadMessage as exc:
            log.warning("ignored a message on %s: %s", topic, exc)
            return None
        raised += alarms
        return str(parsed.kind)


@dataclass(frozen=True)
class _SessionMessage:
    store: str
    member: str
    session: SessionInfo | None


_NOT_OURS = object()


def _read(topic: Topic, payload: bytes) -> object:
    """The typed message a topic carries, checked against its topic; WireError or BadMessage if it
    does not fit, _NOT_OURS for a kind the consumer does not keep."""
    match topic.kind:
        case Kind.EVENTS:
            event = DoorEvent.from_json(payload)
            if (event.store, event.door) != (topic.store, topic.door):
                raise BadMessage("the event names another door than its topic")
            return event
        case Kind.STATUS:
            return parse_status(payload)
        case Kind.SEATS:
            seats = Seats.from_json(payload)
            if seats.store != topic.store:
                raise BadMessage("the seats name another store than their topic")
            return seats
        case Kind.REPLAY_RESULT:
            return ReplayResult.from_json(payload)
        case Kind.SESSION:
            assert topic.store is not None and topic.member is not None
            return _SessionMessage(topic.store, topic.member, parse_session(payload))
        case _:
            return _NOT_OURS
