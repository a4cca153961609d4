"""A gpiozero pin factory backed by the simulated board.

Built on gpiozero's MockFactory/MockPin, so pins keep gpiozero's own timestamped
`states` history, but levels come from (and go to) the board: an output write
reaches the board (and its door physics); an input follows the board's sensors,
with debounce (`bounce_time`) applied as a real pin would.
"""

from __future__ import annotations

import threading
import time

from gpiozero.exc import PinFixedPull, PinInvalidPull
from gpiozero.pins.mock import MockFactory, MockPin

from hwsim.server import BoardLink


class SimPin(MockPin):
    def __init__(self, factory: SimFactory, info: object) -> None:
        self._gpio = int(str(info.name).removeprefix("GPIO"))  # type: ignore[attr-defined]
        self._link = factory.link
        self._last_edge = float("-inf")
        self._settle: threading.Timer | None = None
        super().__init__(factory, info)
        self._state = self._link.read(self._gpio)

    @property
    def gpio(self) -> int:
        return self._gpio

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        if value == "input":
            self._state = self._link.read(self._gpio)

    def _set_pull(self, value: str) -> None:
        # The board's wiring decides the idle level; the pull is only recorded.
        if self.function != "input":
            raise PinFixedPull(f"cannot set pull on non-input pin {self!r}")
        if value not in ("floating", "up", "down"):
            raise PinInvalidPull("pull must be floating, up, or down")
        self._pull = value

    def _set_state(self, value: float) -> None:
        super()._set_state(value)
        # Always write through: after a restart the board may hold a level this pin never set.
        self._link.write(self._gpio, bool(value))

    def board_changed(self, level: bool) -> None:
        """The board's level for this input changed (called from the link's thread)."""
        if self._function != "input":
            return
        now = time.monotonic()
        bounce = self._bounce or 0.0
        if bounce and now - self._last_edge < bounce:
            # Within the bounce window: look again once it has passed, and report the settled level.
            if self._settle is None:
                self._settle = threading.Timer(self._last_edge + bounce - now, self._settled)
                self._settle.daemon = True
                self._settle.start()
            return
        self._deliver(level)

    def _settled(self) -> None:
        self._settle = None
        self.board_changed(self._link.read(self._gpio))

    def _deliver(self, level: bool) -> None:
        if level == self._state:
            return
        self._last_edge = time.monotonic()
        if level:
            self.drive_high()
        else:
            self.drive_low()


class SimFactory(MockFactory):
    """gpiozero pin factory whose pins are the simulated board's."""

    def __init__(self, link: BoardLink) -> None:
        self.link = link
        super().__init__(pin_class=SimPin)
        link.subscribe(self._board_changed)

    def _board_changed(self, gpio: int, level: bool) -> None:
        for pin in list(self.pins.values()):
            if isinstance(pin, SimPin) and pin.gpio == gpio:
                pin.board_changed(level)

    def close(self) -> None:
        super().close()
        self.link.close()
