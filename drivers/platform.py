"""The hardware a door runs on, chosen once at startup: the Pi's own pins, or the simulated board.

Nothing below the CLI asks which one it got. This is the one place outside tests, benches and
the demo that imports the simulator (`hwsim`, from hw-sim/, a separate distribution that a Pi
does not install).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpiozero.pins import Factory

from drivers.gpio import PinWiring
from drivers.readers import CodeReader, ReaderConfig

if TYPE_CHECKING:
    from drivers.display import Screen

log = logging.getLogger("doorctl.platform")


def real_reader(reader: ReaderConfig) -> CodeReader:
    if reader.type == "serial":
        from drivers.serial_reader import SerialReader

        if reader.port is None or reader.baudrate is None:
            raise ValueError(f"reader {reader.name}: a serial reader needs port and baudrate")
        return SerialReader(reader.name, reader.side, reader.port, reader.baudrate)
    from drivers.camera import CameraReader

    if reader.source is None:
        raise ValueError(f"reader {reader.name}: a camera needs a source")
    return CameraReader(reader.name, reader.side, reader.source)


def real_screen(framebuffer: str) -> Screen:
    """The framebuffer device (`/dev/fbN`); DisplayError names what is wrong with it."""
    from drivers.display import FramebufferScreen

    return FramebufferScreen(framebuffer)


@dataclass
class Platform:
    pin_factory: Factory
    name: str
    make_reader: Callable[[ReaderConfig], CodeReader] = real_reader
    make_screen: Callable[[str], Screen] = real_screen
    # Resources to release on exit (a simulated board served from this process, ...).
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()


def pi_platform() -> Platform:
    """lgpio on a Raspberry Pi (the `pi` extra, or apt python3-lgpio)."""
    from gpiozero.pins.lgpio import LGPIOFactory

    return Platform(LGPIOFactory(), "lgpio")


def default_sim_socket(storage_path: str) -> Path:
    """The simulator's socket: `sim.sock` beside the journal (contract §7)."""
    return Path(storage_path).parent / "sim.sock"


def _hwsim() -> Any:
    try:
        import hwsim.runtime
    except ImportError as exc:
        raise RuntimeError(
            f"the hardware simulator is not installed ({exc}); it comes with the source tree "
            "(pip install -e hw-sim), never on a door"
        ) from exc
    return hwsim.runtime


def sim_board_answers(socket_path: Path) -> bool:
    """Does a simulated board answer on this socket?"""
    return bool(_hwsim().board_answers(socket_path))


def serve_sim_board(
    wiring: PinWiring, readers: tuple[ReaderConfig, ...], socket_path: Path
) -> Callable[[], None]:
    """Serve a simulated board on the socket (`doorctl sim`); returns what stops it."""
    _board, server = _hwsim().host_board(wiring, readers, socket_path)
    close: Callable[[], None] = server.close
    return close


def sim_platform(wiring: PinWiring, readers: tuple[ReaderConfig, ...], socket_path: Path) -> Platform:
    """The simulated board: the one answering on the socket, else one started in this process."""
    runtime = _hwsim()
    link, closers = runtime.attach_or_host(wiring, readers, socket_path)

    def make_reader(reader: ReaderConfig) -> CodeReader:
        if reader.type == "serial":
            return real_reader(replace(reader, port=str(runtime.serial_link_path(socket_path, reader.name))))
        if runtime.camera_is_simulated(reader):
            from drivers.camera import CameraReader

            return CameraReader(reader.name, reader.side, f"{socket_path}#{reader.name}",
                                frames=runtime.CAMERA_FRAMES)
        return real_reader(reader)

    def make_screen(framebuffer: str) -> Screen:
        screen: Screen = runtime.SimScreen(socket_path)  # the board keeps what the panel would show
        return screen

    return Platform(runtime.sim_factory(link), f"sim:{socket_path}", make_reader, make_screen, closers)


def select_platform(
    wiring: PinWiring, readers: tuple[ReaderConfig, ...], *, sim: bool, sim_socket: Path
) -> Platform:
    return sim_platform(wiring, readers, sim_socket) if sim else pi_platform()
