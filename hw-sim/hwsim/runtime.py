"""Starting or finding a simulated board for a door configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from controller.config import Config
from hwsim.board import SimBoard, Wiring
from hwsim.readers import SimReaders
from hwsim.server import BoardLink, BoardServer, LocalLink, RemoteLink, board_answers

log = logging.getLogger("hwsim")


def gpio_number(name: str | None) -> int | None:
    """BCM number of a gpiozero pin name (GPIO17, BCM17, BOARD11, J8:11...)."""
    if name is None:
        return None
    for _header, info in MockFactory().board_info.find_pin(name):
        return int(str(info.name).removeprefix("GPIO"))
    raise ValueError(f"{name} is not a GPIO pin")


def wiring_for(config: Config) -> Wiring:
    lock = config.lock
    relay = gpio_number(lock.relay_pin)
    assert relay is not None
    return Wiring(
        relay=relay,
        relay_active_high=lock.relay_active_high,
        door_sensor=gpio_number(lock.door_sensor_pin),
        exit_button=gpio_number(lock.exit_button_pin),
        fire_alarm=gpio_number(lock.fire_alarm_pin),
        lock_sensor=gpio_number(lock.lock_sensor_pin),
    )


def host_board(config: Config, path: Path) -> tuple[SimBoard, BoardServer]:
    board = SimBoard(wiring_for(config))
    server = BoardServer(board, path)
    readers = SimReaders(config, path)
    server.extra_ops.update(readers.ops())
    server.stream_ops.update(readers.stream_ops())
    server.readers = readers
    server.start()
    return board, server


def attach_or_host(config: Config, path: Path) -> tuple[BoardLink, list[Callable[[], Any]]]:
    if board_answers(path):
        log.info("using the simulated board on %s", path)
        remote = RemoteLink(path)
        return remote, [remote.close]
    log.info("starting a simulated board in this process on %s", path)
    board, server = host_board(config, path)
    return LocalLink(board), [server.close]
