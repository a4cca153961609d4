"""An in-process door rig: simulated board, gpiozero pins, relay guard, reactor thread, real journal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.core import DoorCore
from controller.journal import Journal
from controller.lock import LockController
from controller.reactor import Reactor
from drivers.gpio import DoorPins
from drivers.relay import RelayGuard
from hwsim.board import SimBoard
from hwsim.pins import SimFactory
from hwsim.runtime import wiring_for
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


class Rig:
    def __init__(self, tmp_path: Path, board: SimBoard | None = None, **lock: Any) -> None:
        lock_cfg = {"relay_pin": "GPIO17", "door_sensor_pin": "GPIO27", "exit_button_pin": "GPIO22",
                    "fire_alarm_pin": "GPIO23", "lock_sensor_pin": "GPIO24", "unlock_seconds": 0.5,
                    "max_unlock_seconds": 1.0, "door_held_seconds": 1, **lock}
        self.config: Config = make_config(tmp_path, lock=lock_cfg)
        self.board = board or SimBoard(wiring_for(self.config))
        self.factory = SimFactory(LocalLink(self.board))
        self.pins = DoorPins.open(self.config.lock, self.factory)
        self.reactor = Reactor()
        self.journal = Journal(self.config.storage.path)
        self.core = DoorCore(self.config, self.journal)
        self.guard = RelayGuard(self.pins.relay, self.config.lock.max_unlock_seconds,
                                on_trip=lambda s: self.reactor.post(lambda: self.lock.relay_tripped(s)))
        self.lock = LockController(self.config.lock, self.pins, self.guard, self.reactor, self.core)
        self.reactor.post(self.lock.start)
        self.thread = threading.Thread(target=self.reactor.run, daemon=True)
        self.thread.start()
        self.reader = Journal(self.config.storage.path)  # the test's own connection

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
        self.reactor.stop()
        self.thread.join(5)
        self.guard.force_off()
        self.pins.close()
        self.journal.close()
        self.reader.close()
