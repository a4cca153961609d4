"""An in-process door rig: simulated board, gpiozero pins, relay guard, reactor thread, real journal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.daemon import DoorDaemon
from controller.journal import Journal
from drivers.gpio import DoorPins
from drivers.platform import Platform
from drivers.relay import RelayGuard
from hwsim.board import SimBoard
from hwsim.pins import SimFactory
from hwsim.runtime import board_wiring
from hwsim.server import LocalLink
from tests.helpers import make_config


def wait_for(predicate: Callable[[], Any], timeout: float = 3.0, step: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def relay_on_spans(board: SimBoard, since: float = 0.0) -> list[tuple[float, float | None]]:
    """(on, off) monotonic times of every relay activation on the board."""
    spans: list[tuple[float, float | None]] = []
    start: float | None = None
    for change in board.changes("relay", since):
        energized = change.level == board.wiring.relay_active_high
        if energized and start is None:
            start = change.t
        elif not energized and start is not None:
            spans.append((start, change.t))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


class Relay:
    """The door's relay: a RelayGuard over gpiozero pins on a simulated board."""

    def __init__(self, config: Config) -> None:
        self.board = SimBoard(board_wiring(config.lock.wiring))
        self.pins = DoorPins.open(config.lock.wiring, SimFactory(LocalLink(self.board)))
        self.guard = RelayGuard(self.pins.relay, config.lock.max_unlock_seconds)

    def close(self) -> None:
        self.guard.force_off()
        self.pins.close()


class Rig:
    """The real DoorDaemon (pins, relay guard, reactor, journal, core) on a simulated board in this
    process, serving on a thread; the test keeps its own journal connection to read events."""

    def __init__(self, tmp_path: Path, board: SimBoard | None = None, mqtt: dict[str, Any] | None = None,
                 **lock: Any) -> None:
        lock_cfg = {"relay_pin": "GPIO17", "door_sensor_pin": "GPIO27", "exit_button_pin": "GPIO22",
                    "fire_alarm_pin": "GPIO23", "lock_sensor_pin": "GPIO24", "unlock_seconds": 0.5,
                    "max_unlock_seconds": 1.0, "door_held_seconds": 1, **lock}
        sections: dict[str, Any] = {"lock": lock_cfg}
        if mqtt is not None:
            sections["mqtt"] = mqtt
        self.config: Config = make_config(tmp_path, **sections)
        self.board = board or SimBoard(board_wiring(self.config.lock.wiring))
        platform = Platform(SimFactory(LocalLink(self.board)), "sim:in-process")
        self.daemon = DoorDaemon(self.config, platform)
        self.core = self.daemon.core
        self.reactor = self.daemon.reactor
        self.guard = self.daemon.guard
        self.pins = self.daemon.pins
        self.thread = threading.Thread(target=self.daemon.serve, daemon=True)
        self.thread.start()
        self.reader = Journal(self.config.storage.path)  # the test's own connection
        assert wait_for(lambda: self.on_reactor(lambda: True))

    def event_types(self) -> list[str]:
        return [e.type for e in self.reader.events()]

    def events(self, type_: str) -> list[Any]:
        return [e for e in self.reader.events() if e.type == type_]

    def press_exit(self) -> None:
        self.board.set_input("exit_button", True)
        time.sleep(0.03)
        self.board.set_input("exit_button", False)

    def on_reactor(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the reactor thread and return its result."""
        done = threading.Event()
        box: list[Any] = []
        self.reactor.post(lambda: (box.append(fn()), done.set()))
        assert done.wait(5)
        return box[0]

    def close(self) -> None:
        self.daemon.stop()
        self.thread.join(5)
        self.reader.close()
