"""The revocation list, kept published (contract §4, §8): the newest list the database holds is
published retained at start, every 10 minutes, and as soon as a newer one is committed (a disable
here, in another instance or from the command line); a publish the broker does not take is retried
with backoff. So a list deleted from the broker, or never seen by a door with a new journal, heals
within one republish, and no disable waits on the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from officepass.models import Revocation

log = logging.getLogger("officepass.revocations")

REPUBLISH_SECONDS = 600.0  # the same list again (contract §8)
POLL_SECONDS = 10.0  # how soon a list committed elsewhere (another instance, the CLI) goes out
RETRY_START, RETRY_CAP = 1.0, 60.0


def newest(db: Session) -> Revocation | None:
    return db.execute(select(Revocation).order_by(Revocation.version.desc()).limit(1)).scalar_one_or_none()


class RevocationPublisher:
    def __init__(self, sessions: Callable[[], Session], publish: Callable[[int, list[str]], None],
                 republish_seconds: float = REPUBLISH_SECONDS, poll_seconds: float = POLL_SECONDS) -> None:
        self._sessions = sessions
        self._publish = publish  # (version, member ids) -> the signed list published; raises on failure
        self._republish = republish_seconds
        self._poll = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.published: int | None = None  # the version last taken by the broker
        self._thread = threading.Thread(target=self._run, name="revocations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def nudge(self) -> None:
        """A newer list was committed: publish it now."""
        self._wake.set()

    def _run(self) -> None:
        last_sent = -1e18  # monotonic: when the list last went out
        retry = RETRY_START
        while not self._stop.is_set():
            try:
                with self._sessions() as db:
                    current = newest(db)
                due = current is not None and (current.version != self.published
                                               or time.monotonic() - last_sent >= self._republish)
                if current is not None and due:
                    self._publish(current.version, list(current.members["ids"]))
                    if current.version != self.published:
                        log.info("revocation list version %d published", current.version)
                    self.published, last_sent, retry = current.version, time.monotonic(), RETRY_START
                wait = self._poll
            except Exception as exc:  # the broker or the database is away: try again, later and later
                log.warning("revocation list not published (retrying in %.0f s): %s", retry, exc)
                wait, retry = retry, min(retry * 2, RETRY_CAP)
            self._wake.wait(wait)
            self._wake.clear()
