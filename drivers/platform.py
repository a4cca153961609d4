"""The hardware a door runs on, chosen once at startup: the Pi's own pins, or the simulated board.

Nothing below the CLI asks which one it got.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpiozero.pins import Factory

from controller.config import Config, ReaderConfig
from drivers.readers import CodeReader

log = logging.getLogger("doorctl.platform")


def real_reader(reader: ReaderConfig) -> CodeReader:
    if reader.type == "serial":
        from drivers.serial_reader import SerialReader

        assert reader.port is not None
        return SerialReader(reader.name, reader.side, reader.port, reader.baudrate)
    from drivers.camera import CameraReader

    assert reader.source is not None
    return CameraReader(reader.name, reader.side, reader.source)


@dataclass
class Platform:
    pin_factory: Factory
    name: str
    make_reader: Callable[[ReaderConfig], CodeReader] = real_reader
    # Resources to release on exit (a simulated board served from this process, ...).
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()


def pi_platform() -> Platform:
    """lgpio on a Raspberry Pi (the `pi` extra, or apt python3-lgpio)."""
    from gpiozero.pins.lgpio import LGPIOFactory

    return Platform(LGPIOFactory(), "lgpio")


def default_sim_socket(config: Config) -> Path:
    return Path(config.storage.path).parent / "sim.sock"


def sim_platform(config: Config, socket_path: str | Path | None = None) -> Platform:
    """The simulated board: the one answering on the socket, else one started in this process."""
    from hwsim.runtime import attach_or_host

    path = Path(socket_path) if socket_path else default_sim_socket(config)
    link, closers = attach_or_host(config, path)
    from hwsim.pins import SimFactory
    from hwsim.readers import camera_is_simulated, serial_link_path

    def make_reader(reader: ReaderConfig) -> CodeReader:
        if reader.type == "serial":
            from drivers.serial_reader import SerialReader

            return SerialReader(reader.name, reader.side, str(serial_link_path(path, reader.name)))
        if camera_is_simulated(reader):
            from drivers.camera import CameraReader

            return CameraReader(reader.name, reader.side, f"hwsim://{path}#{reader.name}")
        return real_reader(reader)

    return Platform(SimFactory(link), f"sim:{path}", make_reader, closers)


def select_platform(config: Config, *, sim: bool, sim_socket: str | None = None) -> Platform:
    return sim_platform(config, sim_socket) if sim else pi_platform()
