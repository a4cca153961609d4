"""The console's charts (operators): per store, seats held through a day (a step chart), seats held
by weekday and hour (a heat map), checkouts by the member vs by the door and overstays per week; for
the fleet, the busiest and emptiest stores. Each has its numbers as a CSV download."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from officepass.models import StoreRecord
from officepass.usage import WEEKDAYS, busiest, csv_rows, habits, local_zone, occupancy, utilisation
from officepass.web.guard import DB, Operator
from officepass.web.pages import render
from officepass.web.svg import habit_bars, heat_map, ranking, step_chart

router = APIRouter(prefix="/console/charts")
DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
WEEKS_RE = re.compile(r"[0-9]{1,2}")
RANKED = 5  # the busiest and the emptiest, five each
CHARTS = ("occupancy", "utilisation", "habits")


def _day(request: Request) -> date:
    raw = request.query_params.get("day", "").strip()
    if not raw:
        return datetime.now(local_zone()).date()
    try:
        if not DAY_RE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise HTTPException(422, "day is a date as YYYY-MM-DD") from None


def _weeks(request: Request) -> int:
    raw = request.query_params.get("weeks", "4").strip() or "4"
    if not WEEKS_RE.fullmatch(raw) or not 1 <= int(raw) <= 52:
        raise HTTPException(422, "weeks is a whole number from 1 to 52")
    return int(raw)


def _store(session: DB, store: str) -> StoreRecord:
    record = session.get(StoreRecord, store)
    if record is None:
        raise HTTPException(404, f"no store {store}")
    return record


def _csv(name: str, text: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "Cache-Control": "no-store"})


@router.get("", response_class=HTMLResponse)
def fleet(request: Request, user: Operator, session: DB) -> Response:
    day = _day(request)
    ranked = busiest(session, session.execute(select(StoreRecord.id)).scalars().all(), day, 7, local_zone())
    return render(request, "charts.html", {
        "user": user, "record": None, "day": day, "weeks": 1,
        "charts": [("busiest", ranking("busiest", ranked[:RANKED], "Busiest stores, seat-hours, 7 days")),
                   ("emptiest", ranking("emptiest", ranked[::-1][:RANKED],
                                        "Emptiest stores, seat-hours, 7 days"))],
        "csv": f"/console/charts/fleet.csv?day={day.isoformat()}"})


@router.get("/fleet.csv")
def fleet_csv(request: Request, user: Operator, session: DB) -> Response:
    day = _day(request)
    ranked = busiest(session, session.execute(select(StoreRecord.id)).scalars().all(), day, 7, local_zone())
    return _csv("fleet-seat-hours", csv_rows([("store", "seat_hours_last_7_days"),
                                              *((s, f"{h:.2f}") for s, h in ranked)]))


@router.get("/{store}", response_class=HTMLResponse)
def store_charts(request: Request, store: str, user: Operator, session: DB) -> Response:
    record = _store(session, store)
    day, weeks, zone = _day(request), _weeks(request), local_zone()
    return render(request, "charts.html", {
        "user": user, "record": record, "day": day, "weeks": weeks,
        "previous": (day - timedelta(days=1)).isoformat(), "next": (day + timedelta(days=1)).isoformat(),
        "charts": [("occupancy", step_chart(occupancy(session, store, day, zone))),
                   ("utilisation", heat_map(utilisation(session, store, day, weeks, zone))),
                   ("habits", habit_bars(habits(session, store, day, max(weeks, 1), zone)))],
        "csv": None})


@router.get("/{store}/{chart}.csv")
def store_csv(request: Request, store: str, chart: str, user: Operator, session: DB) -> Response:
    _store(session, store)
    day, weeks, zone = _day(request), _weeks(request), local_zone()
    rows: list[Sequence[object]]
    if chart == "occupancy":
        data = occupancy(session, store, day, zone)
        rows = [("time", "seats_held", "capacity"),
                *((t.isoformat(timespec="seconds"), s, data.capacity) for t, s in data.steps)]
    elif chart == "utilisation":
        heat = utilisation(session, store, day, weeks, zone)
        rows = [("weekday", *(f"{h:02d}:00" for h in range(24))),
                *((WEEKDAYS[d], *(f"{v:.3f}" for v in row)) for d, row in enumerate(heat.share))]
    elif chart == "habits":
        rows = [("week_of", "checkouts_by_member", "checkouts_by_door", "overstays"),
                *((w.isoformat(), m, a, o) for w, m, a, o in habits(session, store, day, weeks, zone).weeks)]
    else:
        raise HTTPException(404, f"no chart {chart}: one of {', '.join(CHARTS)}")
    return _csv(f"{store}-{chart}-{day.isoformat()}", csv_rows(rows))
