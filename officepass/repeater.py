"""A thread that does one round of work now, then again every `poll_seconds` or as soon as it is
nudged; a round that raises (the broker or the database away) is tried again after 1 s, doubling to
60 s. The revocation list and the doors' configurations are kept published this way."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

RETRY_START, RETRY_CAP = 1.0, 60.0


class Repeater:
    def __init__(self, name: str, work: Callable[[], None], poll_seconds: float, log: logging.Logger,
                 failed: str) -> None:
        self._work = work
        self._poll = poll_seconds
        self._log = log
        self._failed = failed  # what the warning says did not happen
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def nudge(self) -> None:
        """Something new was committed: a round now."""
        self._wake.set()

    def _run(self) -> None:
        retry = RETRY_START
        while not self._stop.is_set():
            try:
                self._work()
                wait, retry = self._poll, RETRY_START
            except Exception as exc:  # away for now: again, later and later
                self._log.warning("%s (retrying in %.0f s): %s", self._failed, retry, exc)
                wait, retry = retry, min(retry * 2, RETRY_CAP)
            self._wake.wait(wait)
            self._wake.clear()
