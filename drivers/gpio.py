"""The door's GPIO devices, as gpiozero devices over whatever pin factory was chosen at startup."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins import Factory

# Contacts bounce for a few ms; 20 ms hides that and stays far below anything a person does.
DEBOUNCE_SECONDS = 0.02


@dataclass(frozen=True)
class PinWiring:
    """Which GPIO does what (gpiozero pin names); None = not fitted."""

    relay_pin: str
    relay_active_high: bool
    door_sensor_pin: str | None
    exit_button_pin: str | None
    fire_alarm_pin: str | None
    lock_sensor_pin: str | None


def make_relay(config: PinWiring, factory: Factory) -> DigitalOutputDevice:
    """The lock relay, driven to its off level the moment it is claimed."""
    return DigitalOutputDevice(
        config.relay_pin, active_high=config.relay_active_high, initial_value=False, pin_factory=factory
    )


def _input(pin: str | None, factory: Factory) -> DigitalInputDevice | None:
    if pin is None:
        return None
    # Inputs are active-high with pull-downs: an open circuit (cut wire) reads inactive.
    return DigitalInputDevice(pin, pull_up=False, bounce_time=DEBOUNCE_SECONDS, pin_factory=factory)


@dataclass
class DoorPins:
    relay: DigitalOutputDevice
    door_closed: DigitalInputDevice | None  # active = door closed
    exit_button: DigitalInputDevice | None  # active = pressed
    fire_alarm: DigitalInputDevice | None  # active = alarm
    bolt_retracted: DigitalInputDevice | None  # active = bolt retracted

    @classmethod
    def open(cls, config: PinWiring, factory: Factory) -> DoorPins:
        relay = make_relay(config, factory)  # first: nothing else happens with the relay undefined
        return cls(
            relay=relay,
            door_closed=_input(config.door_sensor_pin, factory),
            exit_button=_input(config.exit_button_pin, factory),
            fire_alarm=_input(config.fire_alarm_pin, factory),
            bolt_retracted=_input(config.lock_sensor_pin, factory),
        )

    def close(self) -> None:
        for device in (self.door_closed, self.exit_button, self.fire_alarm, self.bolt_retracted):
            if device is not None:
                with contextlib.suppress(Exception):
                    device.close()
        # The relay is left driven off, not released: a released pin may float.
        self.relay.off()
