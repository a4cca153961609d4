"""A fleet under faults, end to end (issue 19): 20 simulated doors, two service instances on one
PostgreSQL, the closed broker; members at every door for several minutes while the broker restarts
three times, an instance and a door are killed and started again and a door's link is cut for 60 s.
After healing, for every door the API's events are its journal's (none lost, none twice), seats and
sessions agree, no alarm stands that the door does not have, and every event reached the webhook."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet import build, run_faults, wait_healed
from tests.pg import postgres_cluster

DOORS = 20
MINUTES = 3.5


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_fleet_under_faults_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    with postgres_cluster() as url:
        fleet = build(tmp_path, url, DOORS, cut_door=7)
        try:
            last_fault = run_faults(fleet, MINUTES)
            healed, problems = wait_healed(fleet, timeout=240)
            events = fleet.api_events()
            print(fleet.table(events))
            print(f"the service agreed with every door {healed - last_fault:.1f} s after the last fault")
            assert problems == [], problems
            ids = [e["id"] for e in events]
            assert len(ids) == len(set(ids)), "no event twice in the API"
            journaled = {i for door in fleet.doors for i in door.journal().values()}
            assert set(ids) == journaled, "the API holds exactly the doors' journals"
            assert sum(d.replayed() for d in fleet.doors) > 0, "the faults made gaps the doors repaired"
            assert fleet.open_alarms() == [], "no alarm stands that its door does not have"
            assert wait_for_webhooks(fleet, journaled), "every event reached the webhook"
            assert fleet.actions["code shown"] > 0 and fleet.actions["app checkout"] > 0
        finally:
            fleet.stop()


def wait_for_webhooks(fleet: object, ids: set[str]) -> bool:
    from tests.fleet import Fleet
    from tests.rig import wait_for

    assert isinstance(fleet, Fleet)
    return wait_for(lambda: ids <= set(fleet.receiver.arrived), 120, step=1)
