"""LockController: the relay pulse, the door and bolt sensors, the exit and fire inputs, and alarms.

Runs on the reactor thread: gpiozero callbacks (on the pin factory's threads)
only post to the reactor. The relay itself goes through RelayGuard, which bounds
it independently of this code. Every alarm is journaled through the DoorCore.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from controller.config import LockConfig
from controller.core import DoorCore
from controller.decision import Event
from controller.reactor import Reactor, TimerHandle
from drivers.gpio import DoorPins
from drivers.relay import RelayGuard

log = logging.getLogger("doorctl.lock")

UNLOCK_FAULT_SECONDS = 1.0


class LockController:
    def __init__(
        self,
        config: LockConfig,
        pins: DoorPins,
        guard: RelayGuard,
        reactor: Reactor,
        core: DoorCore,
    ) -> None:
        self.config = config
        self.pins = pins
        self.guard = guard
        self.reactor = reactor
        self.core = core
        self.alarms: set[str] = set()
        self.on_change: Callable[[], None] = lambda: None  # status publishers hook in here
        self._pulse_end: TimerHandle | None = None
        self._fault_check: TimerHandle | None = None
        self._held_check: TimerHandle | None = None
        self._opened_during_pulse = False
        self._bolt_moved = False  # the bolt retracted at some point during the current pulse
        self._fire = False
        self._wire(pins.door_closed, on=lambda: self._door(False), off=lambda: self._door(True))
        self._wire(pins.exit_button, on=self._exit_pressed)
        self._wire(pins.fire_alarm, on=lambda: self._fire_input(True), off=lambda: self._fire_input(False))
        self._wire(pins.bolt_retracted, on=self._bolt_retracted)

    def _wire(self, device: Any, on: Callable[[], None], off: Callable[[], None] | None = None) -> None:
        if device is None:
            return
        # gpiozero calls these on its own threads: only hand the work to the reactor.
        device.when_activated = lambda: self.reactor.post(on)
        if off is not None:
            device.when_deactivated = lambda: self.reactor.post(off)

    def start(self) -> None:
        """Pick up inputs already active at start (a fire alarm that is on when we boot)."""
        if self.pins.fire_alarm is not None and self.pins.fire_alarm.is_active:
            self._fire_input(True)

    # --- state for status -------------------------------------------------------------

    @property
    def door_state(self) -> str:
        if self.pins.door_closed is None:
            return "unknown"
        return "closed" if self.pins.door_closed.is_active else "open"

    @property
    def lock_state(self) -> str:
        if "unlock_fault" in self.alarms:
            return "jammed"
        return "unlocked" if self.guard.energized else "locked"

    # --- unlocking --------------------------------------------------------------------

    def unlock(self) -> None:
        """Pulse the relay for unlock_seconds (ends early once the door opened and closed again)."""
        if self._pulse_end is not None:
            self._pulse_end.cancel()
        else:
            self._opened_during_pulse = False
            self._bolt_moved = False
        self.guard.energize()
        self._pulse_end = self.reactor.call_later(self.config.unlock_seconds, self._end_pulse)
        if self.pins.bolt_retracted is not None and self._fault_check is None:
            self._fault_check = self.reactor.call_later(UNLOCK_FAULT_SECONDS, self._check_bolt)
        self.on_change()

    def _end_pulse(self) -> None:
        self._pulse_end = None
        if not self._fire:
            self.guard.release()
        self.on_change()

    def _check_bolt(self) -> None:
        self._fault_check = None
        bolt = self.pins.bolt_retracted
        # Judged on the whole pulse so far: a pulse shorter than the check still counts.
        if bolt is None or self._bolt_moved or bolt.is_active:
            return
        if "unlock_fault" not in self.alarms:
            self.alarms.add("unlock_fault")
            log.error("unlock fault: relay on for %.1fs and the bolt has not retracted", UNLOCK_FAULT_SECONDS)
            self.core.record(Event("unlock_fault", None, "system", "bolt_not_retracted"))
            self.on_change()

    def _bolt_retracted(self) -> None:
        self._bolt_moved = True
        if "unlock_fault" in self.alarms:
            self.alarms.discard("unlock_fault")
            self.on_change()

    # --- inputs -----------------------------------------------------------------------

    def _exit_pressed(self) -> None:
        handled = self.core.exit_button()
        if handled.decision is not None and handled.decision.unlock:
            self.unlock()

    def _fire_input(self, active: bool) -> None:
        if active == self._fire:
            return
        self._fire = active
        if active:
            self.core.record(Event("unlock", None, "fire", "fire_alarm", {"hold": True}))
            self.guard.hold(True)
            self.alarms.add("fire")
        else:
            self.core.record(Event("fire_cleared", None, "fire"))
            self.guard.hold(False)
            self.alarms.discard("fire")
            if self._pulse_end is None:
                self.guard.release()
        self.on_change()

    def _door(self, opened: bool) -> None:
        if opened:
            self._door_opened()
        else:
            self._door_closed()
        self.on_change()

    def _door_opened(self) -> None:
        exit_active = self.pins.exit_button is not None and self.pins.exit_button.is_active
        if self.guard.energized:
            self._opened_during_pulse = True
        elif not (self._fire or exit_active):
            self.alarms.add("door_forced")
            log.warning("door forced: opened with the relay off")
            self.core.record(Event("door_forced", None, "system"))
        if self._held_check is not None:
            self._held_check.cancel()
        if not self._fire:
            self._held_check = self.reactor.call_later(self.config.door_held_seconds, self._door_held)

    def _door_closed(self) -> None:
        if self._held_check is not None:
            self._held_check.cancel()
            self._held_check = None
        self.alarms.discard("door_forced")
        self.alarms.discard("door_held")
        if self._pulse_end is not None and self._opened_during_pulse:
            # The member went through: lock again now instead of waiting out the pulse.
            self._pulse_end.cancel()
            self._end_pulse()

    def _door_held(self) -> None:
        self._held_check = None
        if self.door_state == "open" and not self._fire:
            self.alarms.add("door_held")
            log.warning("door held open over %ss", self.config.door_held_seconds)
            self.core.record(Event("door_held", None, "system", None,
                                   {"held_seconds": self.config.door_held_seconds}))
            self.on_change()

    def relay_tripped(self, on_for: float) -> None:
        """The guard dropped the relay at its bound (reactor thread, posted by the guard)."""
        if self._pulse_end is not None:
            self._pulse_end.cancel()
            self._pulse_end = None
        self.core.record(Event("relay_watchdog", None, "system", "max_unlock_exceeded",
                               {"on_seconds": round(on_for, 3), "max_unlock_seconds":
                                self.config.max_unlock_seconds}))
        self.on_change()
