"""RelayGuard: the in-process bound on how long the lock relay stays energized.

It runs on its own thread and owns the relay's on/off, so it drops the relay at
`max_unlock_seconds` even when the reactor hangs or a handler raises. Only the
fire input (`hold`) may keep the relay on longer.

"Stuck" means: on continuously for longer than the bound since the last accepted
request (`energize`). Members unlocking one after another restart the count, so
a busy doorway never trips the guard, while a loop that stops sending the
relay off is caught one bound after its last request. The other layers of the
safety chain (systemd watchdog, `doorctl relay-off` after stop, the board's
hardware watchdog) cover the cases where this whole process is gone or frozen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gpiozero import DigitalOutputDevice

log = logging.getLogger("doorctl.relay")

TripCallback = Callable[[float], None]  # seconds the relay had been on


class RelayGuard:
    def __init__(
        self,
        relay: DigitalOutputDevice,
        max_on_seconds: float,
        on_trip: TripCallback | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relay = relay
        self._max_on = max_on_seconds
        self._on_trip = on_trip
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._on_since: float | None = None  # when the relay went on
        self._bound_from = 0.0  # the last request: the bound counts from here
        self._hold = False
        self._closed = False
        relay.off()
        self._thread = threading.Thread(target=self._watch, name="relay-guard", daemon=True)
        self._thread.start()

    @property
    def energized(self) -> bool:
        return self._on_since is not None

    @property
    def held(self) -> bool:
        return self._hold

    def energize(self) -> None:
        """Start (or continue) an unlock. The bound counts from this request."""
        with self._cond:
            if self._closed:
                return
            self._bound_from = self._monotonic()
            if self._on_since is None:
                self._on_since = self._bound_from
                self._relay.on()
            self._cond.notify()

    def hold(self, active: bool) -> None:
        """Fire input: hold the relay on, unbounded, while active."""
        with self._cond:
            if self._closed:
                return
            self._hold = active
            if active:
                if self._on_since is None:
                    self._on_since = self._monotonic()
                self._relay.on()
            else:
                # Fire over: the bound applies again, counted from now.
                self._bound_from = self._monotonic()
            self._cond.notify()

    def release(self) -> None:
        """End an unlock (not a fire hold)."""
        with self._cond:
            if self._hold or self._on_since is None:
                return
            self._relay.off()
            self._on_since = None
            self._cond.notify()

    def force_off(self) -> None:
        """Shutdown: relay off whatever holds it, and never on again from this guard."""
        with self._cond:
            self._closed = True
            self._hold = False
            self._relay.off()
            self._on_since = None
            self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._on_since is None or self._hold:
                    self._cond.wait()
                    continue
                remaining = self._bound_from + self._max_on - self._monotonic()
                if remaining > 0:
                    self._cond.wait(timeout=remaining)
                    continue
                on_for = self._monotonic() - self._on_since
                self._relay.off()
                self._on_since = None
                log.error("relay watchdog: relay on %.2fs, dropped at the %.1fs bound", on_for, self._max_on)
                if self._on_trip is not None:
                    try:
                        self._on_trip(on_for)
                    except Exception:
                        log.exception("relay watchdog trip callback failed")
