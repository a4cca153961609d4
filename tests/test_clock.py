"""Door time: the floor, what may move it, and what may not (fake wall, monotonic and sync probe)."""

from __future__ import annotations

from controller.clock import DoorClock, kernel_clock_synced


class Fake:
    def __init__(self, value: float | bool) -> None:
        self.value = value

    def __call__(self) -> float:
        return float(self.value)


def test_unsynchronized_wall_clock_behind_the_floor_is_held_at_the_floor() -> None:
    wall, mono = Fake(100.0), Fake(0.0)
    clock = DoorClock(1000.0, wall=wall, monotonic=mono, synced_probe=lambda: False)
    assert clock.now() == 1000.0
    mono.value = 5.0
    assert clock.now() == 1005.0, "with the wall clock behind, time moves on the monotonic clock"
    wall.value = 5000.0
    assert clock.now() == 5000.0, "a wall clock ahead is used for now..."
    assert clock.floor == 1005.0, "...but an unsynchronized reading never becomes the floor"
    wall.value = 10.0
    assert clock.now() == 1005.0, "a wall clock set back cannot take the door below its floor"


def test_accepted_codes_raise_the_floor_never_lower_it() -> None:
    wall, mono = Fake(100.0), Fake(0.0)
    clock = DoorClock(1000.0, wall=wall, monotonic=mono, synced_probe=lambda: False)
    clock.raise_floor(9000.0)
    assert clock.now() == 9000.0 and clock.floor == 9000.0
    clock.raise_floor(1.0)
    assert clock.floor == 9000.0
    mono.value = 2.0
    assert clock.now() == 9002.0


def test_a_synchronized_clock_sets_the_floor_up_or_down() -> None:
    wall, mono = Fake(50_000.0), Fake(0.0)
    synced = Fake(True)
    clock = DoorClock(90_000.0, wall=wall, monotonic=mono, synced_probe=lambda: bool(synced.value))
    assert clock.now() == 50_000.0, "NTP's time wins over a floor an earlier wrong clock pushed ahead"
    assert clock.floor == 50_000.0
    synced.value = False
    mono.value = 10.0
    wall.value = 0.0  # NTP lost and the clock reset: the floor from the synchronized reading holds
    assert clock.now() == 50_010.0


def test_kernel_probe_reads_adjtimex_without_forking() -> None:
    # Twice: the second call must not look up libc again (find_library forks ldconfig).
    from controller import clock as module

    first = kernel_clock_synced()
    assert kernel_clock_synced() == first
    assert module._libc.cache_info().misses == 1
