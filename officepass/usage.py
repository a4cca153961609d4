"""How stores are used, from the events the doors sent (the console's charts and their CSVs).

Seats held follow the doors' own events: a `check_in` takes a seat, a `checkout` frees it (the
member's, an automatic one after an overstay, or a withdrawn check-in whose bolt never moved). Times
are the service's local time zone, as the console shows them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from officepass.models import EventRecord, StoreSeats, stored_time, time_bound
from wire.rules import DEFAULT_SEATS
from wire.vocab import EventType

SEAT_EVENTS = (EventType.CHECK_IN.value, EventType.CHECKOUT.value)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def capacity(db: Session, store: str) -> int:
    """The store's seats as its door last published them; the door's default before it has."""
    record = db.get(StoreSeats, store)
    value = record.value if record is not None else None
    return value.capacity if value is not None else DEFAULT_SEATS


def _held(db: Session, moment: datetime, store: str | None = None) -> Counter[str]:
    """Seats held at `moment` per store (one store, or all): check-ins before it less checkouts
    before it (never below zero)."""
    query = (select(EventRecord.store, EventRecord.type, func.count())
             .where(EventRecord.type.in_(SEAT_EVENTS), EventRecord.ts < time_bound(moment))
             .group_by(EventRecord.store, EventRecord.type))
    if store is not None:
        query = query.where(EventRecord.store == store)
    held: Counter[str] = Counter()
    for found, kind, n in db.execute(query):
        held[found] += n if kind == EventType.CHECK_IN.value else -n
    return Counter({found: max(0, n) for found, n in held.items()})


def _changes(db: Session, start: datetime, end: datetime,
             store: str | None = None) -> dict[str, list[tuple[datetime, int]]]:
    """Each store's seat changes (time, +1 or -1) from start to end, in order (one store, or all)."""
    query = (select(EventRecord.store, EventRecord.ts, EventRecord.type)
             .where(EventRecord.type.in_(SEAT_EVENTS), EventRecord.ts >= time_bound(start),
                    EventRecord.ts < time_bound(end))
             .order_by(EventRecord.store, EventRecord.ts, EventRecord.seq))
    if store is not None:
        query = query.where(EventRecord.store == store)
    changes: dict[str, list[tuple[datetime, int]]] = {}
    for found, ts, kind in db.execute(query):
        changes.setdefault(found, []).append((stored_time(ts), 1 if kind == EventType.CHECK_IN.value else -1))
    return changes


def _spans(held: int, changes: list[tuple[datetime, int]], start: datetime,
           stop: datetime) -> Iterator[tuple[datetime, datetime, int]]:
    """start..stop cut at every change: (from, to, seats held meanwhile)."""
    moment = start
    for ts, change in [*changes, (stop, 0)]:
        yield moment, ts, held
        held, moment = max(0, held + change), ts


@dataclass(frozen=True)
class Occupancy:
    """Seats held through one day: (time, seats) at midnight and at every change, as a step."""

    day: date
    capacity: int
    steps: list[tuple[datetime, int]]
    until: datetime  # the line ends here: the day's end, or now for today


def occupancy(db: Session, store: str, day: date, zone: tzinfo, now: datetime | None = None) -> Occupancy:
    start = datetime.combine(day, time(0), zone)
    end = start + timedelta(days=1)
    until = min(end, max(start, now or datetime.now(UTC)))
    held = _held(db, start, store)[store]
    steps = [(start, held)]
    for ts, change in _changes(db, start, end, store).get(store, []):
        held = max(0, held + change)
        steps.append((ts.astimezone(zone), held))
    return Occupancy(day, capacity(db, store), steps, until)


@dataclass(frozen=True)
class HeatMap:
    """Share of the seats held, by weekday and hour, over the weeks up to `end`."""

    weeks: int
    capacity: int
    share: list[list[float]]  # [weekday][hour] in 0..1


def utilisation(db: Session, store: str, end: date, weeks: int, zone: tzinfo,
                now: datetime | None = None) -> HeatMap:
    day_end = datetime.combine(end + timedelta(days=1), time(0), zone)
    start = day_end - timedelta(weeks=weeks)
    stop = min(day_end, max(start, now or datetime.now(UTC)))  # nothing is held in the future
    seat_seconds = [[0.0] * 24 for _ in WEEKDAYS]
    changes = _changes(db, start, stop, store).get(store, [])
    for since, until, held in _spans(_held(db, start, store)[store], changes, start, stop):
        _spread(seat_seconds, since, until.astimezone(zone), held, zone)
    seats = capacity(db, store)
    whole = seats * 3600 * weeks  # seat-seconds in one weekday-hour over the weeks
    return HeatMap(weeks, seats, [[min(1.0, s / whole) for s in day] for day in seat_seconds])


def _spread(buckets: list[list[float]], start: datetime, end: datetime, held: int, zone: tzinfo) -> None:
    """Add `held` seats over start..end to the weekday/hour buckets it crosses."""
    if held <= 0 or end <= start:
        return
    moment = start.astimezone(zone)
    while moment < end:
        next_hour = (moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        upto = min(end, next_hour)
        buckets[moment.weekday()][moment.hour] += held * (upto - moment).total_seconds()
        moment = upto


@dataclass(frozen=True)
class Habits:
    """Per week (its Monday): checkouts the member did, checkouts the door did after an overstay,
    overstays."""

    weeks: list[tuple[date, int, int, int]]


def habits(db: Session, store: str, end: date, weeks: int, zone: tzinfo) -> Habits:
    monday = end - timedelta(days=end.weekday())
    first = monday - timedelta(weeks=weeks - 1)
    start = datetime.combine(first, time(0), zone)
    rows = db.execute(select(EventRecord.ts, EventRecord.type, EventRecord.body).where(
        EventRecord.store == store, EventRecord.ts >= time_bound(start),
        EventRecord.type.in_((EventType.CHECKOUT.value, EventType.OVERSTAY.value)))).all()
    by_week: dict[date, Counter[str]] = {first + timedelta(weeks=n): Counter() for n in range(weeks)}
    for ts, kind, body in rows:
        local = stored_time(ts).astimezone(zone).date()
        week = local - timedelta(days=local.weekday())
        if week not in by_week:
            continue
        if kind == EventType.OVERSTAY.value:
            by_week[week]["overstay"] += 1
        elif body.get("withdrawn"):
            continue  # a check-in the door took back: nobody checked out
        else:
            by_week[week]["auto" if body.get("auto") else "member"] += 1
    return Habits([(week, c["member"], c["auto"], c["overstay"]) for week, c in sorted(by_week.items())])


def busiest(db: Session, stores: Sequence[str], end: date, days: int,
            zone: tzinfo) -> list[tuple[str, float]]:
    """Each store's seat-hours held over the `days` up to `end`, busiest first (two queries for the
    whole fleet)."""
    stop = datetime.combine(end + timedelta(days=1), time(0), zone)
    start = stop - timedelta(days=days)
    held, changes = _held(db, start), _changes(db, start, stop)
    totals = [(store, sum(n * (b - a).total_seconds() for a, b, n in
                          _spans(held[store], changes.get(store, []), start, stop)) / 3600)
              for store in stores]
    return sorted(totals, key=lambda t: (-t[1], t[0]))


def csv_rows(rows: Iterable[Sequence[object]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return out.getvalue()
