from __future__ import annotations

from controller.clock import DoorClock, kernel_clock_synced


class Fake:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_floor_and_monotonic_advance() -> None:
    wall, mono = Fake(100.0), Fake(0.0)
    clock = DoorClock(1000.0, wall=wall, monotonic=mono, synced_probe=lambda: True)
    assert clock.now() == 1000.0
    mono.t = 5.0
    assert clock.now() == 1005.0, "with the wall clock behind, time moves on the monotonic clock"
    wall.t = 5000.0
    assert clock.now() == 5000.0, "a wall clock ahead of the floor wins (NTP synced)"
    wall.t = 10.0
    assert clock.now() == 5000.0, "never back in time"
    mono.t = 6.0
    assert clock.now() == 5001.0
    assert not clock.synced()
    clock.raise_floor(9000.0)
    assert clock.now() == 9000.0 and clock.floor == 9000.0
    clock.raise_floor(1.0)
    assert clock.now() == 9000.0


def test_synced_needs_kernel_and_agreement() -> None:
    wall, mono = Fake(100.0), Fake(0.0)
    assert DoorClock(0, wall=wall, monotonic=mono, synced_probe=lambda: True).synced()
    assert not DoorClock(0, wall=wall, monotonic=mono, synced_probe=lambda: False).synced()


def test_kernel_probe_answers() -> None:
    assert isinstance(kernel_clock_synced(), bool)
