"""The door's notion of "now" (issue 2, item 5).

A Pi has no battery-backed clock: it may boot in 1970, or an attacker may set
the clock back to make an old screenshot of a code valid again. So the door
time never goes below a persisted floor (the newest wall-clock time it has
seen, and the newest verified code's `iat`), and between wall-clock readings
it advances on the monotonic clock. Durations (relay pulses, presentation
windows) use `monotonic()` directly and never this class.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

_TIME_OK = 0


def kernel_clock_synced() -> bool:
    """Ask the kernel (adjtimex) whether NTP has disciplined the clock.

    Returns False when it cannot tell: an unsynced door should say so, not guess.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # struct timex is ~208 bytes on 64-bit Linux; a zeroed buffer with modes=0 only reads.
        buf = ctypes.create_string_buffer(512)
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return False
    return bool(state == _TIME_OK)


class DoorClock:
    """Monotonic-backed wall time with a floor: never earlier than anything already seen."""

    def __init__(
        self,
        floor: float = 0.0,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        synced_probe: Callable[[], bool] = kernel_clock_synced,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._synced_probe = synced_probe
        self._anchor = max(floor, wall())
        self._anchor_mono = monotonic()

    def now(self) -> float:
        """Door time in unix seconds: the wall clock, unless it is behind what we already know."""
        mono = self._monotonic()
        derived = self._anchor + (mono - self._anchor_mono)
        wall = self._wall()
        if wall > derived:
            # Re-anchor on every newer wall reading, so a later jump back cannot undo it.
            self._anchor, self._anchor_mono = wall, mono
            return wall
        return derived

    def raise_floor(self, at_least: float) -> None:
        """A verified code proves the time is at least its `iat`."""
        current = self.now()
        if at_least > current:
            self._anchor, self._anchor_mono = at_least, self._monotonic()
        else:
            self._anchor, self._anchor_mono = current, self._monotonic()

    @property
    def floor(self) -> float:
        """What to persist so a restart cannot go back in time."""
        return self.now()

    def synced(self) -> bool:
        """True when the kernel reports NTP sync and the wall clock agrees with the floor."""
        return self._wall() >= self.now() - 1.0 and self._synced_probe()
