"""The revocation list, kept published (contract §4, §8): the newest list the database holds is
published retained at start, every 10 minutes, and as soon as a newer one is committed (a disable
here, in another instance or from the command line); a publish the broker does not take is retried
with backoff. So a list deleted from the broker, or never seen by a door with a new journal, heals
within one republish, and no disable waits on the broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.models import Revocation
from officepass.repeater import Repeater

log = logging.getLogger("officepass.revocations")

REPUBLISH_SECONDS = 600.0  # the same list again (contract §8)
POLL_SECONDS = 10.0  # how soon a list committed elsewhere (another instance, the CLI) goes out


def newest(db: Session) -> Revocation | None:
    return db.execute(select(Revocation).order_by(Revocation.version.desc()).limit(1)).scalar_one_or_none()


class RevocationPublisher:
    def __init__(self, sessions: Callable[[], Session], publish: Callable[[int, list[str]], None],
                 republish_seconds: float = REPUBLISH_SECONDS, poll_seconds: float = POLL_SECONDS) -> None:
        self._sessions = sessions
        self._publish = publish  # (version, member ids) -> the signed list published; raises on failure
        self._republish = republish_seconds
        self.published: int | None = None  # the version last taken by the broker
        self._last_sent = -1e18  # monotonic: when the list last went out
        self._repeater = Repeater("revocations", self._round, poll_seconds, log,
                                  "revocation list not published")
        self.start, self.stop, self.nudge = self._repeater.start, self._repeater.stop, self._repeater.nudge

    def _round(self) -> None:
        with self._sessions() as db:
            current = newest(db)
        due = current is not None and (current.version != self.published
                                       or time.monotonic() - self._last_sent >= self._republish)
        if current is not None and due:
            self._publish(current.version, list(current.members["ids"]))
            if current.version != self.published:
                log.info("revocation list version %d published", current.version)
            self.published, self._last_sent = current.version, time.monotonic()
