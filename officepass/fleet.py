"""Fleet state from the doors' MQTT messages into the database, idempotently (contract §4, §8).

Events are stored once by `id`; a door's numbering is `(epoch, seq)` and the seqs missing between
the lowest and highest stored are kept as gaps, which late or redelivered events fill. Whatever
the order and however often events arrive, the stored state is the same.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from officepass.models import DoorRecord, EventRecord, LiveSession, SeqGap, SeqRange, StoreSeats

log = logging.getLogger("officepass.fleet")


class BadMessage(ValueError):
    """A payload that is not what the contract says; the message says why."""


def parse_ts(value: Any) -> datetime:
    if not isinstance(value, str):
        raise BadMessage("ts is not text")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadMessage(f"ts {value!r} is not RFC 3339") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _text(body: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadMessage(f"{key} missing or not text of 1-64 characters")
    return value


def record_event(db: Session, body: Any) -> bool:
    """Store one event; False when it was stored before (a redelivery). Raises BadMessage."""
    if not isinstance(body, dict):
        raise BadMessage("an event is a JSON object")
    event_id, store, door, kind = (_text(body, k) for k in ("id", "store", "door", "type"))
    assert event_id is not None and store is not None and door is not None and kind is not None
    seq = body.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise BadMessage("seq missing or not a positive integer")
    epoch = body.get("epoch", "")  # doors before epochs numbered once, from 1
    if not isinstance(epoch, str) or len(epoch) > 32:
        raise BadMessage("epoch is not text")
    ts = parse_ts(body.get("ts"))
    member = _text(body, "member", optional=True)
    if db.get(EventRecord, event_id) is not None:
        return False
    key = {"store": store, "door": door, "epoch": epoch}
    span = db.execute(select(SeqRange).filter_by(**key).with_for_update()).scalar_one_or_none()
    if span is None:
        db.add(SeqRange(**key, low=seq, high=seq))
    elif db.execute(select(EventRecord.id).filter_by(**key, seq=seq)).first() is not None:
        log.warning("event %s repeats seq %d of %s/%s (epoch %s) under another id: kept the first",
                    event_id, seq, store, door, epoch)
        return False
    else:
        _fill(db, key, span, seq)
    db.add(EventRecord(id=event_id, **key, seq=seq, type=kind, member=member, ts=ts, body=body))
    return True


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
        gap = db.execute(select(SeqGap).filter_by(**key).where(SeqGap.first <= seq, SeqGap.last >= seq)
                         .with_for_update()).scalar_one_or_none()
        if gap is None:
            return
        first, last = gap.first, gap.last
        db.execute(delete(SeqGap).filter_by(**key, first=first))
        if first <= seq - 1:
            db.add(SeqGap(**key, first=first, last=seq - 1))
        if seq + 1 <= last:
            db.add(SeqGap(**key, first=seq + 1, last=last))


def record_status(db: Session, store: str, door: str, body: Any, now: datetime) -> None:
    """A door's retained status, or its Last Will (`{"online": false}`)."""
    if not isinstance(body, dict) or not isinstance(body.get("online"), bool):
        raise BadMessage("a status is an object with online true or false")
    record = db.get(DoorRecord, (store, door))
    online = body["online"]
    if record is None:
        db.add(DoorRecord(store=store, door=door, online=online, status=body, last_seen=now))
        return
    record.online = online
    if online:
        record.status, record.last_seen = body, now
    else:  # keep the last full status to show what the door was like when it went away
        record.status = {**record.status, "online": False}


def record_seats(db: Session, store: str, body: Any, now: datetime) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("available"), int):
        raise BadMessage("seats is an object with an integer available")
    record = db.get(StoreSeats, store)
    if record is None:
        db.add(StoreSeats(store=store, seats=body, updated=now))
    else:
        record.seats, record.updated = body, now


def record_session(db: Session, store: str, member: str, body: Any) -> None:
    """A live session, or its end (an empty retained payload arrives as None)."""
    record = db.get(LiveSession, (store, member))
    if body is None:
        if record is not None:
            db.delete(record)
        return
    if not isinstance(body, dict) or body.get("member") != member:
        raise BadMessage("a session is an object naming its member")
    if record is None:
        db.add(LiveSession(store=store, member=member, session=body))
    else:
        record.session = body


def gaps(db: Session, store: str, door: str) -> list[tuple[str, int, int]]:
    rows = db.execute(select(SeqGap).filter_by(store=store, door=door).order_by(SeqGap.epoch, SeqGap.first))
    return [(g.epoch, g.first, g.last) for g in rows.scalars()]
