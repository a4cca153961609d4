"""The door's notion of "now".

A Pi has no battery-backed clock: it may boot in 1970, or someone may set the clock back
to make an old screenshot of a code valid again. So the door keeps a time *floor*: a lower
bound on the true time that grows with the monotonic clock, persisted in the journal.

What may move the floor:
* a wall clock the kernel says NTP has synchronized: it sets the floor, up or *down* (a
  synchronized clock is the best evidence there is, so it also undoes a floor that an
  earlier wrong clock or a bad source pushed ahead);
* an accepted code's `iat`, which the issuer signed. The verifier only accepts a code whose
  `iat` is at most `max_clock_skew_seconds` ahead of door time, so one code moves the floor
  by at most that much.
An unsynchronized wall clock never moves the floor: it is used for "now" only while it is
ahead of the floor, so a clock that jumped 30 days ahead poisons nothing after a restart
with the right clock.

Durations (relay pulses, alarm timers, presentation windows) use `time.monotonic()` and
never this class.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable
from functools import cache

_TIME_OK = 0


@cache
def _libc() -> ctypes.CDLL | None:
    # find_library forks ldconfig: once per process, never on the way to the relay.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def kernel_clock_state() -> tuple[bool | None, str]:
    """Ask the kernel (adjtimex, read only) whether NTP has disciplined the clock.

    (True, ...) synchronized, (False, ...) not, (None, why) when the kernel would not say (a
    seccomp filter that denies adjtimex: systemd's ProtectClock= does). The unit allows it.
    """
    libc = _libc()
    if libc is None:
        return None, "no C library to ask"
    # struct timex is ~208 bytes on 64-bit Linux; a zeroed buffer with modes=0 only reads.
    buf = ctypes.create_string_buffer(512)
    try:
        state = libc.adjtimex(buf)
    except (OSError, AttributeError) as exc:
        return None, str(exc)
    if state < 0:
        errno = ctypes.get_errno()
        return None, f"adjtimex: {os.strerror(errno)}"
    return state == _TIME_OK, "synchronized" if state == _TIME_OK else f"adjtimex state {state}"


def kernel_clock_synced() -> bool:
    """True only when the kernel says NTP synchronized the clock: an unsure door says no."""
    return kernel_clock_state()[0] is True


class DoorClock:
    """Door time: the synchronized wall clock, else the later of the wall clock and the floor.

    One owner (the reactor) moves the floor (`observe`, `raise_floor`); any thread may read `now()`,
    which writes nothing. The floor and the monotonic reading it was taken at are one tuple, swapped
    whole, so a reader never sees half of an update.
    """

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
        self._anchor = (floor, monotonic())  # (floor, monotonic time it was set at)

    def _floor_now(self) -> float:
        floor, at = self._anchor
        return floor + (self._monotonic() - at)

    def now(self) -> float:
        """Door time in unix seconds (a read: any thread)."""
        wall = self._wall()
        if self._synced_probe():
            return wall
        return max(wall, self._floor_now())

    def observe(self) -> None:
        """The owner's look at the clock: a synchronized wall clock sets the floor, up or down."""
        if self._synced_probe():
            self._anchor = (self._wall(), self._monotonic())

    def raise_floor(self, at_least: float) -> None:
        """An accepted code proves the time is at least its `iat` (the owner only)."""
        if at_least > self._floor_now():
            self._anchor = (at_least, self._monotonic())

    @property
    def floor(self) -> float:
        """What to persist so a restart cannot go back in time (never an unsynchronized reading)."""
        self.observe()  # a synchronized clock updates the floor first
        return self._floor_now()

    def synced(self) -> bool:
        """True when the kernel reports NTP sync."""
        return self._synced_probe()

    def behind_floor(self) -> float:
        """How far the wall clock is behind the floor (0 when it is not): a technician's clue."""
        return max(0.0, self._floor_now() - self._wall())
