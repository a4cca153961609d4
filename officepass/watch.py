"""The offline-door alarm: a door whose Last Will stands longer than `offline_alarm_seconds` is an
alarm (and a mail to support). Measured on this process's monotonic clock from when the service
first saw the door offline, so a jumping wall clock neither raises nor hides it; after a service
restart the count starts again (an alarm comes later, never early)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.alarms import MAILED, OFFLINE, raise_alarm
from officepass.models import DoorRecord

log = logging.getLogger("officepass.watch")

LOOK_SECONDS = 1.0


class OfflineWatch:
    def __init__(self, sessions: Callable[[], Session], after_seconds: float,
                 on_alarm: Callable[[], None] = lambda: None,
                 on_raised: Callable[[], None] = lambda: None) -> None:
        self._sessions, self.after_seconds, self._on_alarm = sessions, after_seconds, on_alarm
        self._on_raised = on_raised  # any alarm raised, once committed (the live pages)
        self._offline_since: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offline-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(LOOK_SECONDS):
            try:
                self.look(time.monotonic())
            except Exception:  # the database may be away for a moment: look again next time
                log.exception("offline watch round failed")

    def look(self, mono: float) -> None:
        raised = any_raised = False
        with self._sessions() as db, db.begin():
            now = datetime.now(UTC)
            # Each door's row held while it is judged: another instance skips it meanwhile, and sees
            # the alarm this one raised once it commits (one alarm, one mail, whichever instance).
            for door in db.execute(select(DoorRecord).with_for_update(skip_locked=True)).scalars():
                key = (door.store, door.door)
                if door.online:  # the consumer cleared its alarm when the status came
                    self._offline_since.pop(key, None)
                    continue
                since = self._offline_since.setdefault(key, mono)
                if mono - since >= self.after_seconds:
                    record = raise_alarm(db, door.store, door.door, OFFLINE, now)
                    if record is not None:
                        any_raised = True
                        log.warning("door %s/%s offline for %.0f s", door.store, door.door, mono - since)
                        raised = raised or record.kind in MAILED
        if any_raised:
            self._on_raised()
        if raised:
            self._on_alarm()
