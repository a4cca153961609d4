"""The simulated board: GPIO levels, door physics and a timeline of every pin change.

It stands where the Raspberry Pi's header and the door hardware stand: the
controller drives the relay pin; the bolt follows the relay a few ms later
(unless jammed); a person opens and closes the door; the sensors follow. Like a
Pi kernel, the board keeps its outputs as they were when the process that
drove them dies: only an explicit write brings the relay down.

Timestamps are `time.monotonic()`, which on Linux is one clock for every
process, so tests can compare a board timeline with times taken elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BOLT_TRAVEL_SECONDS = 0.02

# Roles a pin plays on the door; inputs are active-high (pull-down wiring).
RELAY, DOOR_SENSOR, EXIT_BUTTON, FIRE_ALARM, LOCK_SENSOR = (
    "relay", "door_sensor", "exit_button", "fire_alarm", "lock_sensor",
)
INPUT_NAMES = {"exit_button": EXIT_BUTTON, "fire_alarm": FIRE_ALARM}


@dataclass(frozen=True)
class Wiring:
    """Which GPIO (BCM number) plays which role. None: not fitted."""

    relay: int
    relay_active_high: bool = True
    door_sensor: int | None = None
    exit_button: int | None = None
    fire_alarm: int | None = None
    lock_sensor: int | None = None

    def role(self, gpio: int) -> str | None:
        for name in (RELAY, DOOR_SENSOR, EXIT_BUTTON, FIRE_ALARM, LOCK_SENSOR):
            if getattr(self, name) == gpio:
                return name
        return None


@dataclass(frozen=True)
class PinChange:
    t: float  # time.monotonic()
    gpio: int
    role: str | None
    level: bool


PinListener = Callable[[int, bool], None]


@dataclass
class _World:
    door_open: bool = False
    bolt_retracted: bool = False
    jammed: bool = False
    inputs: dict[str, bool] = field(default_factory=lambda: {EXIT_BUTTON: False, FIRE_ALARM: False})


class SimBoard:
    def __init__(self, wiring: Wiring, *, bolt_travel: float = BOLT_TRAVEL_SECONDS) -> None:
        self.wiring = wiring
        self.bolt_travel = bolt_travel
        self._lock = threading.RLock()
        self._levels: dict[int, bool] = {}
        self._world = _World()
        self.timeline: list[PinChange] = []
        self._listeners: list[PinListener] = []
        self._bolt_timer: threading.Timer | None = None
        # Power-on levels: relay off, sensors as the world is (door closed, bolt extended).
        self._levels[wiring.relay] = not wiring.relay_active_high
        self._record(wiring.relay, self._levels[wiring.relay])
        self._sync_sensors()

    # --- the controller's side ------------------------------------------------------------

    def write(self, gpio: int, level: bool) -> None:
        """An output pin driven by the controller."""
        with self._lock:
            if self._levels.get(gpio) == level:
                return
            self._levels[gpio] = level
            self._record(gpio, level)
            if gpio == self.wiring.relay:
                self._schedule_bolt()

    def read(self, gpio: int) -> bool:
        with self._lock:
            return self._levels.get(gpio, False)

    def subscribe(self, listener: PinListener) -> None:
        """Called (outside the board lock) with (gpio, level) whenever an input pin changes."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: PinListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # --- the world's side -----------------------------------------------------------------

    @property
    def relay_energized(self) -> bool:
        with self._lock:
            return self._levels[self.wiring.relay] == self.wiring.relay_active_high

    def set_door(self, open_: bool) -> None:
        """A person opens or closes the door. With the bolt extended, opening is forcing it."""
        self._world_change(lambda w: setattr(w, "door_open", open_))

    def set_input(self, name: str, active: bool) -> None:
        role = INPUT_NAMES.get(name)
        if role is None:
            raise ValueError(f"unknown input {name!r}: exit_button or fire_alarm")
        self._world_change(lambda w: w.inputs.__setitem__(role, active))

    def set_jammed(self, jammed: bool) -> None:
        """A jammed bolt stays where it is, whatever the relay does."""
        with self._lock:
            self._world.jammed = jammed
        if not jammed:
            self._schedule_bolt()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "relay": self.relay_energized,
                "door": "open" if self._world.door_open else "closed",
                "bolt": "retracted" if self._world.bolt_retracted else "extended",
                "jammed": self._world.jammed,
                "inputs": dict(self._world.inputs),
            }

    def changes(self, role: str, since: float = 0.0) -> list[PinChange]:
        with self._lock:
            return [c for c in self.timeline if c.role == role and c.t >= since]

    # --- internals ------------------------------------------------------------------------

    def _record(self, gpio: int, level: bool) -> None:
        self.timeline.append(PinChange(time.monotonic(), gpio, self.wiring.role(gpio), level))

    def _schedule_bolt(self) -> None:
        with self._lock:
            if self._bolt_timer is not None:
                self._bolt_timer.cancel()
            self._bolt_timer = threading.Timer(self.bolt_travel, self._move_bolt)
            self._bolt_timer.daemon = True
            self._bolt_timer.start()

    def _move_bolt(self) -> None:
        def follow(world: _World) -> None:
            if not world.jammed:
                world.bolt_retracted = self.relay_energized

        self._world_change(follow)

    def _world_change(self, change: Callable[[_World], None]) -> None:
        with self._lock:
            change(self._world)
            changed = self._sync_sensors()
            listeners = list(self._listeners)
        for gpio, level in changed:
            for listener in listeners:
                listener(gpio, level)

    def _sync_sensors(self) -> list[tuple[int, bool]]:
        w, wiring = self._world, self.wiring
        wanted = {
            wiring.door_sensor: not w.door_open,  # closed = active
            wiring.lock_sensor: w.bolt_retracted,  # retracted = active
            wiring.exit_button: w.inputs[EXIT_BUTTON],
            wiring.fire_alarm: w.inputs[FIRE_ALARM],
        }
        changed = []
        for gpio, level in wanted.items():
            if gpio is None or self._levels.get(gpio) == level:
                continue
            self._levels[gpio] = level
            self._record(gpio, level)
            changed.append((gpio, level))
        return changed
