"""A fleet under faults at a larger size (issue 19): the suite's harness (tests/fleet.py) with 100
doors when the machine allows (`FLEET_DOORS`, `FLEET_MINUTES`), two instances on one PostgreSQL.
Prints the per-door table (journaled / stored / repaired / lost / duplicated) and the time the
service took to agree with every door after the last fault."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fleet import build, run_faults, wait_healed
    from tests.pg import postgres_cluster

    doors = int(os.environ.get("FLEET_DOORS", "100"))
    minutes = float(os.environ.get("FLEET_MINUTES", "4"))
    with tempfile.TemporaryDirectory() as tmp, postgres_cluster() as url:
        started = time.monotonic()
        fleet = build(Path(tmp), url, doors, cut_door=7 % doors)
        print(f"{doors} doors and 2 instances up in {time.monotonic() - started:.1f} s")
        try:
            last_fault = run_faults(fleet, minutes)
            healed, problems = wait_healed(fleet, timeout=900)
            events = fleet.api_events()
            table = fleet.table(events).splitlines()
            print("\n".join(table[:1] + table[1:11] + (["..."] if len(table) > 11 else [])))
            ids = [e["id"] for e in events]
            journaled = sum(len(d.journal()) for d in fleet.doors)
            repaired = sum(d.replayed() for d in fleet.doors)
            dups = sum(n - 1 for n in fleet.receiver.arrived.values() if n > 1)
            print(f"{'all doors':<16}{journaled:>10}{len(set(ids)):>8}{repaired:>10}"
                  f"{journaled - len(set(ids)):>6}{len(ids) - len(set(ids)):>12}{dups:>14}")
            print(f"caught up {healed - last_fault:.1f} s after the last fault ended"
                  + ("" if not problems else f"; STILL DIFFERENT: {problems[:5]}"))
        finally:
            fleet.stop()


if __name__ == "__main__":
    main()
