"""Nothing lost between a door and the service (contract §4 `replay`): a gap in what the service
stored is asked for again, the door sends those very events from its journal, and what the journal no
longer holds is reported lost for good. Through the closed broker, the real service and a real door."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, select

from controller.journal import JournaledEvent
from controller.replay import REPLAY_STEP, ReplayServer, missing_ranges
from officepass.fleet import gaps, lost
from officepass.models import EventRecord, SeqGap, SeqRange
from tests.rig import wait_for
from tests.test_officepass_web import DOOR, STORE, running_site
from wire.payloads import ReplayRequest, ReplayResult


def test_missing_ranges() -> None:
    assert missing_ranges(1, 10, [1, 2, 3, 7]) == ((4, 6), (8, 10))
    assert missing_ranges(5, 6, []) == ((5, 6),)
    assert missing_ranges(1, 3, [1, 2, 3]) == ()


def test_the_door_serves_one_request_at_a_time_in_order_in_steps_and_cuts_at_1000() -> None:
    held = {s: JournaledEvent(s, f"id-{s}", 0.0, "unlock", None, "button", None, {}, True, "e1")
            for s in range(1, 3001) if s % 500 != 0}
    sent: list[int] = []
    results: list[ReplayResult] = []
    tasks: list[Callable[[], None]] = []
    server = ReplayServer(lambda: "e1", lambda a, b: [held[s] for s in range(a, b + 1) if s in held],
                          lambda e: sent.append(e.seq), results.append, tasks.append)
    server.asked(ReplayRequest("e1", 1, 2500))  # more than 1,000: cut to its first 1,000
    server.asked(ReplayRequest("old", 1, 10))  # another numbering: all of it is gone
    server.asked(ReplayRequest("e1", 2990, 3010))
    steps = 0
    while tasks:  # the reactor: one step per task, door inputs would run between them
        tasks.pop(0)()
        steps += 1
    assert steps >= 1000 // REPLAY_STEP, "in steps, never all at once"
    assert sent == [s for s in range(1, 1001) if s % 500 != 0] + list(range(2990, 3000))
    assert [(r.epoch, r.first, r.last, r.sent, r.missing) for r in results] == [
        ("e1", 1, 1000, 998, ((500, 500), (1000, 1000))),
        ("old", 1, 10, 0, ((1, 10),)),
        ("e1", 2990, 3010, 10, ((3000, 3010),)),
    ]


def test_a_gap_the_service_holds_is_repaired_from_the_doors_journal(tmp_path: Path) -> None:
    with running_site(tmp_path, f"sqlite:///{tmp_path / 'officepass.db'}") as site:
        for _ in range(6):
            site.board.press()
            assert wait_for(lambda: not site.board.relay(), 5)
        def stored() -> dict[int, str]:
            with site.db() as s:  # type: ignore[operator]
                return {e.seq: e.id for e in s.execute(select(EventRecord).filter_by(store=STORE, door=DOOR))
                        .scalars()}

        assert wait_for(lambda: len(stored()) >= 6, 15)
        before = stored()
        with site.db.begin() as s:  # type: ignore[attr-defined]
            # The service lost seqs 2-4 (as a broker restart makes it lose a shared subscription's
            # queue), and holds an old numbering's gap the door's journal never had.
            epoch = s.execute(select(SeqRange.epoch).filter_by(store=STORE, door=DOOR)).scalar_one()
            s.execute(delete(EventRecord).where(EventRecord.store == STORE, EventRecord.seq.between(2, 4)))
            s.add(SeqGap(store=STORE, door=DOOR, epoch=epoch, first=2, last=4))
            s.add(SeqRange(store=STORE, door=DOOR, epoch="gone", low=1, high=9))
            s.add(SeqGap(store=STORE, door=DOOR, epoch="gone", first=2, last=8))
        assert wait_for(lambda: stored() == before, 20), "the door sent seqs 2-4 again, the same events"
        with site.db() as s:  # type: ignore[operator]
            assert wait_for(lambda: gaps(s, STORE, DOOR) == [], 20)
            assert lost(s, STORE, DOOR) == [("gone", 2, 8)], "what no journal holds is lost for good"
        assert site.service.repair.asked >= 2
        site.as_member("op", "operator pass")
        console = site.client.get("/console").text
        assert f'data-lost="{STORE}/{DOOR}"' in console and "2–8" in console and "data-gap=" not in console
        site.door.wait_line("replayed 3 events")
