"""Gap repair, the service's side (contract §4, §8): every open gap is asked for again from its door
(`replay`), when it appears, again with backoff while it stays open, and again after the service
reconnects to the broker. Events replayed fill the gap as they arrive (they are the same events, the
same ids); a range the door reports `missing` is lost for good and shown as such.

With several instances on one PostgreSQL, a gap is asked for by one of them at a time: the rows are
taken with `FOR UPDATE SKIP LOCKED` (SQLite: one instance, the lock is moot).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from officepass.models import SeqGap, stored_time
from wire.payloads import ReplayRequest

log = logging.getLogger("officepass.repair")

LOOK_SECONDS = 2.0  # how often open gaps are looked at
FIRST_WAIT_SECONDS = 5.0  # after an ask: the door's answer has this long before the next, doubling
MAX_WAIT_SECONDS = 600.0
ASKS_PER_LOOK = 50  # a fleet back from an outage is asked in rounds, not all at once


def wait_after(attempts: int) -> float:
    return min(FIRST_WAIT_SECONDS * float(2 ** max(0, attempts - 1)), MAX_WAIT_SECONDS)


class GapRepair:
    def __init__(self, sessions: Callable[[], Session], ask: Callable[[str, str, ReplayRequest], None],
                 connected: threading.Event) -> None:
        self._sessions = sessions
        self._ask = ask  # (store, door, request) -> published to that door's replay topic
        self._connected = connected
        self._stop = threading.Event()
        self.asked = 0  # requests sent, for the curious (tests, benches)
        self._thread = threading.Thread(target=self._run, name="gap-repair", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        was_connected = False
        while not self._stop.wait(LOOK_SECONDS):
            connected = self._connected.is_set()
            try:
                if connected and not was_connected:
                    self.reset()  # back on the broker: what was asked may have been lost with it
                if connected:
                    self.look(datetime.now(UTC))
            except Exception:
                log.exception("gap repair round failed; trying again")
            was_connected = connected

    def reset(self) -> None:
        with self._sessions() as db, db.begin():
            db.execute(update(SeqGap).values(asked=None))

    def look(self, now: datetime) -> int:
        """Ask for the gaps whose wait is over; how many were asked for."""
        asked = 0
        with self._sessions() as db, db.begin():
            soonest = now - timedelta(seconds=FIRST_WAIT_SECONDS)
            due = db.execute(select(SeqGap).where(or_(SeqGap.asked.is_(None), SeqGap.asked < soonest))
                             .order_by(SeqGap.asked.is_not(None), SeqGap.store, SeqGap.door, SeqGap.first)
                             .limit(ASKS_PER_LOOK * 4).with_for_update(skip_locked=True)).scalars().all()
            for gap in due:
                if gap.asked is not None and stored_time(gap.asked) > \
                        now - timedelta(seconds=wait_after(gap.attempts)):
                    continue
                request = ReplayRequest(gap.epoch, gap.first, gap.last).cut()
                self._ask(gap.store, gap.door, request)
                gap.asked, gap.attempts = now, gap.attempts + 1
                asked += 1
                if asked >= ASKS_PER_LOOK:
                    break
        self.asked += asked
        return asked
