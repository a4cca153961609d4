"""The console's charts: what the doors' events say of a store's day, weeks and habits, as numbers
(CSV) and as pictures (SVG), on a real database; and the pages an operator opens, in the service
as it runs (running_site) and in the browser (a screenshot of the demo-like day is kept)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from officepass.db import engine_for, migrate, sessions
from officepass.fleet import record_events
from officepass.members import add_store
from officepass.usage import busiest, habits, occupancy, utilisation
from officepass.web.svg import habit_bars, heat_map, step_chart
from tests.test_officepass_web import DOOR, SQLITE_ONLY, STORE, database, postgres, running_site  # noqa: F401
from wire.payloads import DoorEvent

TOKYO = ZoneInfo("Asia/Tokyo")
DAY = date(2027, 1, 13)  # a Wednesday


def event(store: str, seq: int, kind: str, at: datetime, member: str = "m-1", **fields: Any) -> DoorEvent:
    return DoorEvent.from_dict({
        "id": str(uuid.uuid4()), "seq": seq, "epoch": "e1", "store": store, "door": "main", "type": kind,
        "member": member, "source": "system" if fields.get("auto") else "entry", "reason": None,
        "ts": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"), **fields})


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), TOKYO)


def test_a_stores_day_weeks_and_habits_from_its_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate(url)
    db = sessions(engine_for(url))
    with db.begin() as s:
        add_store(s, "s1", "One", ["main"])
        add_store(s, "s2", "Two", ["main"])
        record_events(s, [
            event("s1", 1, "check_in", at(23, 0, DAY - timedelta(days=1)), "m-0"),  # in since yesterday
            event("s1", 2, "checkout", at(1, 0), "m-0"),
            event("s1", 3, "check_in", at(9, 0)),
            event("s1", 4, "check_in", at(10, 0), "m-2"),
            event("s1", 5, "checkout", at(11, 30), auto=False),
            event("s1", 6, "overstay", at(12, 15), "m-2"),
            event("s1", 7, "checkout", at(13, 0), "m-2", auto=True),
            event("s1", 8, "check_in", at(15, 0), "m-3"),
            event("s1", 9, "checkout", at(15, 1), "m-3", auto=True, withdrawn=True),  # the bolt never moved
            event("s2", 1, "check_in", at(9, 0)),
            event("s2", 2, "checkout", at(9, 30), auto=False),
        ])
    with db() as s:
        later = at(0, 0, DAY + timedelta(days=30))
        day = occupancy(s, "s1", DAY, TOKYO, now=later)
        assert day.until == at(0, 0, DAY + timedelta(days=1)), "a day gone by is drawn to its end"
        assert occupancy(s, "s1", DAY, TOKYO, now=at(12)).until == at(12), "today: up to now"
        assert [(t.hour, t.minute, n) for t, n in day.steps] == [
            (0, 0, 1), (1, 0, 0), (9, 0, 1), (10, 0, 2), (11, 30, 1), (13, 0, 0), (15, 0, 1), (15, 1, 0)]
        heat = utilisation(s, "s1", DAY, 1, TOKYO, now=later)
        wednesday = heat.share[2]
        assert wednesday[9] == 0.5 and wednesday[10] == 1.0 and wednesday[11] == 0.75 and wednesday[12] == 0.5
        assert wednesday[0] == 0.5 and wednesday[14] == 0.0 and heat.share[1][23] == 0.5  # Tuesday night
        assert habits(s, "s1", DAY, 2, TOKYO).weeks[-1] == (date(2027, 1, 11), 2, 1, 1), \
            "two by members (m-0, m-1), one by the door, one overstay; the withdrawn check-in is neither"
        ranked = busiest(s, ["s1", "s2"], DAY, 7, TOKYO)
        assert [store for store, _ in ranked] == ["s1", "s2"]
        assert abs(ranked[0][1] - (2 + 2.5 + 3 + 1 / 60)) < 0.01 and abs(ranked[1][1] - 0.5) < 0.01
    svg = str(step_chart(day)) + str(heat_map(heat)) + str(habit_bars(habits(sessions(engine_for(url))(),
                                                                              "s1", DAY, 4, TOKYO)))
    assert svg.count("<svg") == 3 and 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg


@SQLITE_ONLY
def test_the_operator_sees_the_charts_and_downloads_their_numbers(tmp_path: Path, database: str) -> None:  # noqa: F811
    with running_site(tmp_path, database) as site:
        site.as_member("m-1", "correct horse")
        assert site.press("check_in")[0] == 200
        site.as_member("op", "operator pass")
        from tests.rig import wait_for

        assert wait_for(lambda: 'data-event="check_in"' in site.client.get(f"/console/stores/{STORE}").text,
                        10)
        page = site.client.get(f"/console/charts/{STORE}")
        assert page.status_code == 200
        assert all(f'data-chart="{c}"' in page.text for c in ("occupancy", "utilisation", "habits"))
        held = site.client.get(f"/console/charts/{STORE}/occupancy.csv")
        assert held.status_code == 200 and held.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(held.text)))
        assert rows[0] == ["time", "seats_held", "capacity"] and rows[-1][1] == "1" and rows[-1][2] == "2"
        heat = list(csv.reader(io.StringIO(site.client.get(f"/console/charts/{STORE}/utilisation.csv").text)))
        assert len(heat) == 8 and len(heat[1]) == 25
        fleet = site.client.get("/console/charts")
        assert 'data-chart="busiest"' in fleet.text and STORE in fleet.text
        assert site.client.get("/console/charts/fleet.csv").text.startswith("store,seat_hours_last_7_days")
        assert site.client.get(f"/console/charts/{STORE}?day=2027-02-30").status_code == 422
        assert site.client.get(f"/console/charts/{STORE}?weeks=99").status_code == 422
        assert site.client.get(f"/console/charts/{STORE}/pie.csv").status_code == 404
        assert site.client.get("/console/charts/nowhere").status_code == 404
        site.as_member("m-2", "second horse")
        assert site.client.get(f"/console/charts/{STORE}").status_code == 403
