"""The fleet's alarms as the console shows them: raised from a door's status (its `alarms` list),
from a `relay_watchdog` event, or by the service when a door stays offline; cleared when the door
says so; kept until an operator acknowledges them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.models import AlarmRecord
from wire.vocab import Alarm, EventType

OFFLINE = "offline"  # the service's own: a door's Last Will stood longer than the configured time
RELAY_WATCHDOG = EventType.RELAY_WATCHDOG.value  # an event, not a standing condition
# What support hears of at once by mail: a member stands at a door that will not open, or a whole
# door is gone.
MAILED = frozenset({Alarm.UNLOCK_FAULT.value, OFFLINE})
# The alarms of a door's status the console lists (fire is an input, cloud_config is the door's own
# set-up problem that `doorctl doctor` names; both still show in the door's row).
WATCHED = frozenset({Alarm.DOOR_FORCED, Alarm.DOOR_HELD, Alarm.UNLOCK_FAULT, Alarm.LOCK_FAULT,
                     Alarm.READER_FAULT, Alarm.JOURNAL_ERROR})


def _standing(db: Session, store: str, door: str) -> dict[str, AlarmRecord]:
    rows = db.execute(select(AlarmRecord).filter_by(store=store, door=door, cleared=None)).scalars()
    return {row.kind: row for row in rows}


def raise_alarm(db: Session, store: str, door: str, kind: str, now: datetime, *,
                instant: bool = False) -> AlarmRecord | None:
    """Open an alarm unless the same one stands; `instant` ones (an event) are cleared at once but
    still wait for their acknowledgement. The new record, or None when it stood already."""
    if not instant and kind in _standing(db, store, door):
        return None
    return _open(db, store, door, kind, now, cleared=now if instant else None)


def _open(
    db: Session, store: str, door: str, kind: str, now: datetime, cleared: datetime | None
) -> AlarmRecord:
    record = AlarmRecord(store=store, door=door, kind=kind, raised=now, cleared=cleared)
    db.add(record)
    db.flush()
    return record


def clear_alarm(db: Session, store: str, door: str, kind: str, now: datetime) -> None:
    standing = _standing(db, store, door).get(kind)
    if standing is not None:
        standing.cleared = now


def sync_status(
    db: Session, store: str, door: str, alarms: Iterable[object], now: datetime
) -> list[AlarmRecord]:
    """Bring the standing alarms of a door in line with the `alarms` of its newest status."""
    reported = {str(a) for a in alarms} & WATCHED
    standing = _standing(db, store, door)
    for kind, record in standing.items():
        if kind in WATCHED and kind not in reported:
            record.cleared = now
    # Standing ones were read just above: open the new ones without asking again.
    return [_open(db, store, door, kind, now, cleared=None) for kind in sorted(reported - standing.keys())]


def acknowledge(db: Session, alarm_id: int, operator: str, now: datetime) -> bool:
    record = db.get(AlarmRecord, alarm_id)
    if record is None or record.acked_by is not None:
        return False
    record.acked_by, record.acked_at = operator, now
    return True


def needing_attention(db: Session) -> list[AlarmRecord]:
    """Every alarm not yet acknowledged, standing ones first, newest first."""
    rows = db.execute(select(AlarmRecord).where(AlarmRecord.acked_by.is_(None))
                      .order_by(AlarmRecord.raised.desc(), AlarmRecord.id.desc())).scalars().all()
    return sorted(rows, key=lambda r: r.cleared is not None)


def next_unmailed(db: Session) -> AlarmRecord | None:
    """The oldest alarm support must still hear of, locked for this transaction (another instance
    skips it meanwhile)."""
    query = select(AlarmRecord).where(AlarmRecord.kind.in_(MAILED), AlarmRecord.mailed.is_(None),
                                      AlarmRecord.acked_by.is_(None))
    oldest = query.order_by(AlarmRecord.id).limit(1).with_for_update(skip_locked=True)
    return db.execute(oldest).scalar_one_or_none()


def unmailed(db: Session) -> list[AlarmRecord]:
    query = select(AlarmRecord).where(AlarmRecord.kind.in_(MAILED), AlarmRecord.mailed.is_(None),
                                      AlarmRecord.acked_by.is_(None))
    return list(db.execute(query.order_by(AlarmRecord.id)).scalars())
