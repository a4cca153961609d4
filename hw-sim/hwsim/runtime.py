"""Starting or finding a simulated board for a door's wiring and readers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory

from drivers.gpio import PinWiring
from drivers.readers import ReaderConfig
from hwsim.board import SimBoard, Wiring
from hwsim.pins import SimFactory
from hwsim.readers import SimReaders, camera_is_simulated, serial_link_path
from hwsim.screen import ScreenState, SimScreen
from hwsim.server import BoardLink, BoardServer, LocalLink, RemoteLink, board_answers

# The camera worker's --frames for a simulated camera: named, not imported (it needs numpy, which
# the daemon does not load).
CAMERA_FRAMES = "hwsim.camera_feed:frames"

# What drivers.platform (the one startup choice) uses of the simulator.
__all__ = ["CAMERA_FRAMES", "SimScreen", "attach_or_host", "board_answers", "camera_is_simulated",
           "host_board", "serial_link_path", "sim_factory"]

log = logging.getLogger("hwsim")


def gpio_number(name: str | None) -> int | None:
    """BCM number of a gpiozero pin name (GPIO17, BCM17, BOARD11, J8:11...)."""
    if name is None:
        return None
    for _header, info in MockFactory().board_info.find_pin(name):
        return int(str(info.name).removeprefix("GPIO"))
    raise ValueError(f"{name} is not a GPIO pin")


def board_wiring(pins: PinWiring) -> Wiring:
    relay = gpio_number(pins.relay_pin)
    if relay is None:
        raise ValueError("the relay pin is required")
    return Wiring(
        relay=relay,
        relay_active_high=pins.relay_active_high,
        door_sensor=gpio_number(pins.door_sensor_pin),
        exit_button=gpio_number(pins.exit_button_pin),
        fire_alarm=gpio_number(pins.fire_alarm_pin),
        lock_sensor=gpio_number(pins.lock_sensor_pin),
    )


def host_board(pins: PinWiring, readers: Sequence[ReaderConfig], path: Path) -> tuple[SimBoard, BoardServer]:
    board = SimBoard(board_wiring(pins))
    server = BoardServer(board, path)
    sim_readers = SimReaders(readers, path)
    server.extra_ops.update(sim_readers.ops())
    server.extra_ops.update(ScreenState().ops())
    server.stream_ops.update(sim_readers.stream_ops())
    server.readers = sim_readers
    server.start()
    return board, server


def attach_or_host(
    pins: PinWiring, readers: Sequence[ReaderConfig], path: Path
) -> tuple[BoardLink, list[Callable[[], Any]]]:
    if board_answers(path):
        log.info("using the simulated board on %s", path)
        remote = RemoteLink(path)
        return remote, [remote.close]
    log.info("starting a simulated board in this process on %s", path)
    board, server = host_board(pins, readers, path)
    return LocalLink(board), [server.close]


def sim_factory(link: BoardLink) -> Factory:
    return SimFactory(link)
