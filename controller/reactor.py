"""The reactor: one thread owns the door's state; every other thread only posts work to it.

Two lanes: door inputs (exit button, fire, door and bolt sensors, the relay guard)
go in the urgent lane, which is always emptied before the next piece of network or
reader work is taken, so a flood of commands delays the exit button by at most one
command's handling. Timers run on the monotonic clock, so a wall-clock jump never
stretches or shortens a timeout. A handler that raises is logged and the loop goes
on: one bad callback must not stop the door.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("doorctl.reactor")

# The longest the loop sleeps between looks. SIGTERM is a process-directed signal: Linux may hand it
# to any thread, and Python runs the handler (which drops the relay first) on this, the main thread,
# only when its wait returns. Short, so a stop drops the relay within this bound whichever thread
# the kernel picked (seen: 0.5 s with the old 0.5 s bound).
MAX_WAIT_SECONDS = 0.1

Work = Callable[[], object]


class TimerHandle:
    __slots__ = ("cancelled", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._urgent: deque[Work] = deque()
        self._normal: deque[Work] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._order = itertools.count()
        self._monotonic = monotonic
        self._running = False
        self.thread: threading.Thread | None = None
        self.loop_hooks: list[Work] = []  # run once per loop turn (watchdog pings)

    def post(self, work: Work) -> None:
        """Thread-safe: run `work` on the reactor thread, after any urgent work."""
        with self._cond:
            self._normal.append(work)
            self._cond.notify()

    def post_urgent(self, work: Work) -> None:
        """Thread-safe: run `work` on the reactor thread ahead of all normal work (door inputs)."""
        with self._cond:
            self._urgent.append(work)
            self._cond.notify()

    def pending(self) -> int:
        """Normal work waiting (for intake limits)."""
        return len(self._normal)

    def _take(self, timeout: float) -> Work | None:
        with self._cond:
            if not self._urgent and not self._normal and timeout > 0:
                self._cond.wait(timeout)
            if self._urgent:
                return self._urgent.popleft()
            if self._normal:
                return self._normal.popleft()
            return None

    def call_later(self, delay: float, work: Work) -> TimerHandle:
        """Reactor thread only (or before run): run `work` after `delay` monotonic seconds."""
        handle = TimerHandle(work)
        heapq.heappush(self._timers, (self._monotonic() + delay, next(self._order), handle))
        return handle

    def every(self, interval: float, work: Work) -> None:
        def repeat() -> None:
            try:
                work()
            finally:
                self.call_later(interval, repeat)

        self.call_later(interval, repeat)

    def stop(self) -> None:
        """Thread-safe: finish the current work and leave `run`."""
        self.post_urgent(self._halt)

    def _halt(self) -> None:
        self._running = False

    def run(self) -> None:
        self._running = True
        self.thread = threading.current_thread()
        while self._running:
            for hook in self.loop_hooks:
                self._guarded(hook)
            timeout = MAX_WAIT_SECONDS
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - self._monotonic()))
            work = self._take(timeout)
            if work is not None:
                self._guarded(work)
            now = self._monotonic()
            while self._timers and self._timers[0][0] <= now and self._running:
                _, _, due = heapq.heappop(self._timers)
                if not due.cancelled:
                    self._guarded(due.work)

    def _guarded(self, work: Work) -> None:
        try:
            work()
        except Exception:
            log.exception("handler %r failed; the door goes on", work)
