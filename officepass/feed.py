"""The events feed (contract §10): every stored event in the order the service stored it, each with
its position as the cursor. Positions are given out without holes and become visible in order
(fleet.record_events), so a reader that asks again after the last cursor it saw misses nothing and
sees nothing twice, whichever instance answers and however late an event was stored (a repair)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.models import EventRecord, FeedCounter, stored_time

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def utc_text(ts: datetime) -> str:
    """A stored time as the wire writes times (RFC 3339 UTC, milliseconds; from the datetime itself,
    not a float of seconds, so no millisecond is lost to rounding)."""
    return stored_time(ts).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cursor_of(position: int) -> str:
    return str(position)


def position_of(cursor: str) -> int:
    """The position a cursor names; ValueError when it names none."""
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise ValueError(f"cursor {cursor[:40]!r} is not one this service gave out")
    return int(cursor)


def event_object(event: EventRecord) -> dict[str, Any]:
    """The door's event (§4) as the API and webhooks give it: plus when it was stored, and its cursor."""
    return {**event.body, "received": utc_text(event.received), "cursor": cursor_of(event.position)}


@dataclass(frozen=True)
class Page:
    events: list[dict[str, Any]]
    next: str


def page(db: Session, after: str | None, limit: int = DEFAULT_PAGE, **filters: str) -> Page:
    """The events stored after `after` (from the first without one) that match the filters (store,
    door, type, member), at most `limit`; `next` is the cursor to ask with next time."""
    position = position_of(after) if after is not None else 0
    # The newest position first: everything up to it is committed (positions become visible in
    # order), so a page that ends short can move the cursor to it, past events a filter left out.
    top = db.execute(select(FeedCounter.position).where(FeedCounter.id == 1)).scalar_one()
    if position > top:  # positions only grow: a cursor past the newest is not one of ours
        raise ValueError(f"cursor {after!r} is past the newest event ({top}): not one this service gave out")
    query = (select(EventRecord).where(EventRecord.position > position, EventRecord.position <= top)
             .filter_by(**filters))
    rows = db.execute(query.order_by(EventRecord.position).limit(limit)).scalars().all()
    last = rows[-1].position if len(rows) == limit else top
    return Page([event_object(row) for row in rows], cursor_of(last))
