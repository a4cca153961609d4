"""Fleet state from the doors' MQTT messages into the database, idempotently (contract §4, §8).

Events are stored once by `id`; a door's numbering is `(epoch, seq)` and the seqs missing between
the lowest and highest stored are kept as gaps, which late or redelivered events fill. Whatever
the order and however often events arrive, the stored state is the same.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from officepass.models import (
    DoorRecord,
    EventRecord,
    FeedCounter,
    LiveSession,
    SeqGap,
    SeqLost,
    SeqRange,
    StoreSeats,
)
from wire.payloads import DoorEvent, DoorStatus, ReplayResult, Seats, SessionInfo, StatusMessage
from wire.rules import parse_rfc3339

log = logging.getLogger("officepass.fleet")
# The events table itself: the batch is inserted in Core, with no ORM object per event.
_EVENTS = EventRecord.metadata.tables[EventRecord.__tablename__]


class BadMessage(ValueError):
    """A payload that is not what the contract says; the message says why."""


def parse_ts(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadMessage("ts is not text")
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise BadMessage(f"ts {value!r} is not RFC 3339") from None


def record_event(db: Session, event: DoorEvent) -> bool:
    """Store one (validated) event; False when it was stored before (a redelivery)."""
    return bool(record_events(db, [event]))


def record_events(db: Session, events: list[DoorEvent]) -> list[DoorEvent]:
    """Store a batch of (validated) events; the ones newly stored (redeliveries and repeats are
    left out), one event after another as they came, with a few statements for the whole batch:
    the feed's counter, the ids already stored, the doors' ranges, the seqs they already hold (only
    where the batch reaches into a range: a live door's next events lie past it), and the new rows.

    The ingest rate of the fleet rests on this function (bench/service): it stays in SQLAlchemy
    Core where the ORM would build an object per event."""
    if not events:
        return []
    # The feed's counter first, by writing it: its row lock (PostgreSQL) or the write lock (SQLite,
    # whose Python driver begins a transaction only at a write) orders every storing transaction of
    # any instance before it reads anything, so positions become visible in order, what it reads
    # next cannot go stale, and the locks are always taken in the same order (no deadlock).
    start = db.execute(update(FeedCounter).where(FeedCounter.id == 1).values(position=FeedCounter.position)
                       .returning(FeedCounter.position)).scalar_one()
    # Nothing is flushed between the batch's reads (each would write the ranges changed so far);
    # `_cut`, the one read that must see this batch's own gaps, flushes first.
    with db.no_autoflush:
        known = set(db.execute(select(EventRecord.id).where(EventRecord.id.in_([e.id for e in events])))
                    .scalars())
        by_numbering: dict[tuple[str, str, str], list[DoorEvent]] = {}
        for event in events:
            if event.id not in known:
                known.add(event.id)  # a redelivery inside the batch is stored once too
                by_numbering.setdefault((event.store, event.door, event.epoch), []).append(event)
        if not by_numbering:
            return []
        numbering = tuple_(SeqRange.store, SeqRange.door, SeqRange.epoch)
        spans = {(r.store, r.door, r.epoch): r for r in db.execute(
            select(SeqRange).where(numbering.in_(list(by_numbering)))
            .order_by(SeqRange.store, SeqRange.door, SeqRange.epoch).with_for_update()).scalars()}
        taken = _taken(db, by_numbering, spans)
        fresh: list[DoorEvent] = []
        for key, batch in by_numbering.items():
            store, door, epoch = key
            columns = {"store": store, "door": door, "epoch": epoch}
            span = spans.get(key)
            for event in batch:
                if (*key, event.seq) in taken:
                    log.warning("event %s repeats seq %d of %s/%s (epoch %s) under another id: kept the "
                                "first", event.id, event.seq, store, door, epoch)
                    continue
                taken.add((*key, event.seq))
                if span is None:
                    span = SeqRange(**columns, low=event.seq, high=event.seq)
                    db.add(span)
                else:
                    _fill(db, columns, span, event.seq)
                fresh.append(event)
    if fresh:
        received = datetime.now(UTC)
        db.execute(update(FeedCounter).where(FeedCounter.id == 1).values(position=start + len(fresh)))
        # On the connection, in Core: the rows go to the driver's executemany as they are. (A
        # RETURNING, for SQLAlchemy's multi-row "insertmanyvalues", measured slower on PostgreSQL.)
        db.connection().execute(insert(_EVENTS), [
            {"id": e.id, "store": e.store, "door": e.door, "epoch": e.epoch, "seq": e.seq,
             "type": e.type.value, "member": e.member, "ts": parse_rfc3339(e.ts), "body": e.to_dict(),
             "position": start + offset, "received": received}
            for offset, e in enumerate(fresh, start=1)])
    return fresh


def _taken(db: Session, by_numbering: dict[tuple[str, str, str], list[DoorEvent]],
           spans: dict[tuple[str, str, str], SeqRange]) -> set[tuple[str, str, str, int]]:
    """The batch's seqs a door's numbering already holds under another id. Only a seq inside the
    door's stored range [low, high] can be held, so a door whose events all lie outside it (the live
    case: the next seqs) costs no query; the others, one query, one index range per door (a
    row-value IN of hundreds of tuples plans badly)."""
    inside: dict[tuple[str, str, str], set[int]] = {}
    for key, batch in by_numbering.items():
        span = spans.get(key)
        if span is not None:
            seqs = {e.seq for e in batch if span.low <= e.seq <= span.high}
            if seqs:
                inside[key] = seqs
    if not inside:
        return set()
    held = or_(*(and_(EventRecord.store == store, EventRecord.door == door, EventRecord.epoch == epoch,
                      EventRecord.seq.in_(seqs))
                 for (store, door, epoch), seqs in inside.items()))
    return {(row[0], row[1], row[2], row[3]) for row in db.execute(
        select(EventRecord.store, EventRecord.door, EventRecord.epoch, EventRecord.seq).where(held))}


def _fill(db: Session, key: dict[str, str], span: SeqRange, seq: int) -> None:
    """Adjust the range and the gaps for a new seq of this door and epoch."""
    if seq > span.high:
        if seq > span.high + 1:
            db.add(SeqGap(**key, first=span.high + 1, last=seq - 1))
        span.high = seq
    elif seq < span.low:
        if seq < span.low - 1:
            db.add(SeqGap(**key, first=seq + 1, last=span.low - 1))
        span.low = seq
    else:  # inside the range and not stored: it fills (part of) a gap
        _cut(db, key, seq, seq)


def _cut(db: Session, key: dict[str, str], first: int, last: int) -> None:
    """Take first..last out of the open gaps (arrived, or reported lost); what is left of a gap keeps
    when it was asked for, so a replay under way is not asked for again."""
    db.flush()  # the gaps this batch opened so far are in the table before it is read
    overlapping = db.execute(select(SeqGap).filter_by(**key).where(SeqGap.first <= last, SeqGap.last >= first)
                             .with_for_update()).scalars().all()
    for gap in overlapping:
        low, high, asked, attempts = gap.first, gap.last, gap.asked, gap.attempts
        db.execute(delete(SeqGap).filter_by(**key, first=low))
        if low <= first - 1:
            db.add(SeqGap(**key, first=low, last=first - 1, asked=asked, attempts=attempts))
        if last + 1 <= high:
            db.add(SeqGap(**key, first=last + 1, last=high, asked=asked, attempts=attempts))


def record_lost(db: Session, store: str, door: str, result: ReplayResult, now: datetime) -> int:
    """A door's replay result: the ranges it no longer holds are lost for good (shown, never asked
    for again). How many seqs that closed."""
    key = {"store": store, "door": door, "epoch": result.epoch}
    lost = 0
    for first, last in result.missing:
        held = db.execute(select(EventRecord.seq).filter_by(**key).where(EventRecord.seq.between(first, last))
                          ).scalars().all()
        if held:  # stored meanwhile (a redelivery): only the rest is lost
            continue
        _cut(db, key, first, last)
        if db.get(SeqLost, (store, door, result.epoch, first)) is None:
            db.add(SeqLost(**key, first=first, last=last, reported=now))
            lost += last - first + 1
    return lost


def record_status(db: Session, store: str, door: str, status: StatusMessage, now: datetime) -> None:
    """A door's retained status, or its Last Will (`{"online": false}`)."""
    record = db.get(DoorRecord, (store, door))
    online = isinstance(status, DoorStatus)
    if record is None:
        body = status.to_dict() if isinstance(status, DoorStatus) else {"online": False}
        db.add(DoorRecord(store=store, door=door, online=online, status=body, last_seen=now))
        return
    record.online = online
    if isinstance(status, DoorStatus):
        record.status, record.last_seen = {**status.extra, **status.to_dict()}, now
    else:  # keep the last full status to show what the door was like when it went away
        record.status = {**record.status, "online": False}


def record_seats(db: Session, seats: Seats, now: datetime) -> None:
    record = db.get(StoreSeats, seats.store)
    if record is None:
        db.add(StoreSeats(store=seats.store, seats=seats.to_dict(), updated=now))
    else:
        record.seats, record.updated = seats.to_dict(), now


def record_session(db: Session, store: str, member: str, session: SessionInfo | None) -> None:
    """A live session, or its end (the empty retained payload)."""
    record = db.get(LiveSession, (store, member))
    if session is None:
        if record is not None:
            db.delete(record)
        return
    if session.member != member:
        raise BadMessage("a session names another member than its topic")
    if record is None:
        db.add(LiveSession(store=store, member=member, session=session.to_dict()))
    else:
        record.session = session.to_dict()


def lost(db: Session, store: str, door: str) -> list[tuple[str, int, int]]:
    rows = db.execute(select(SeqLost).filter_by(store=store, door=door)
                      .order_by(SeqLost.epoch, SeqLost.first))
    return [(r.epoch, r.first, r.last) for r in rows.scalars()]


def gaps(db: Session, store: str, door: str) -> list[tuple[str, int, int]]:
    rows = db.execute(select(SeqGap).filter_by(store=store, door=door).order_by(SeqGap.epoch, SeqGap.first))
    return [(g.epoch, g.first, g.last) for g in rows.scalars()]
