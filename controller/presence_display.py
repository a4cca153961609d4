"""Keeps the door's screen current (contract §9): the QR of `{url}?pc={code}` for the window, the
store, and a bar for the time the code has left; with the cloud link down, the QR hidden and the
reason shown (an app command could not reach the door). Its own thread: a slow or broken panel
never holds up the door, and it only reads the door's clock and the cloud link's state."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from controller.signage import Picture, draw_bar, screen_base
from drivers.display import Screen
from wire.presence import PresenceCodes, screen_url

log = logging.getLogger("doorctl.display")

BAR_STEPS = 48  # the bar moves this many times per window: a new picture only when it does
# The longest sleep between looks: how late the screen may notice the cloud link went down.
MAX_SLEEP_SECONDS = 0.25


class PresenceDisplay:
    def __init__(self, screen: Screen, codes: PresenceCodes | None, door_url: str, store: str, door: str,
                 door_time: Callable[[], float], online: Callable[[], bool]) -> None:
        self.screen, self.codes, self.door_url = screen, codes, door_url
        self.store, self.door = store, door
        self._door_time, self._online = door_time, online
        self._shown: tuple[str | None, int] | None = None
        self._canvas: Picture | None = None  # the picture on the screen, kept to redraw the bar
        self.problem: str | None = None  # why the last picture did not reach the screen
        self.frames = 0  # pictures put on the screen (the benchmark counts them)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="presence-display", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.screen.close()

    def picture(self) -> tuple[Picture, str | None, tuple[int, int] | None] | None:
        """The picture due now and the rows that changed (None: all), or None when the screen
        already shows it. The code's picture is drawn once; the bar's steps redraw only the bar."""
        t = self._door_time()
        text: str | None = None
        step = 0
        if self.codes is not None and self._online():
            text = screen_url(self.door_url, self.codes.current(t))
            step = int(self.codes.seconds_left(t) / self.codes.window_seconds * BAR_STEPS)
        if (text, step) == self._shown:
            return None
        whole = self._canvas is None or self._shown is None or self._shown[0] != text
        if whole or self._canvas is None:
            self._canvas = screen_base(self.screen.width, self.screen.height, self.store, self.door, text)
        rows: tuple[int, int] | None = None
        if text is not None:
            bar = draw_bar(self._canvas, step / BAR_STEPS)
            rows = None if whole else bar
        self._shown = (text, step)
        return self._canvas, text, rows

    def refresh(self) -> None:
        due = self.picture()
        if due is None:
            return
        try:
            self.screen.show(*due)
        except (OSError, ValueError) as exc:
            self._shown = None  # try again at the next look
            if str(exc) != self.problem:
                log.error("the door's screen does not take pictures: %s", exc)
                self.problem = str(exc)
            return
        if self.problem is not None:
            log.info("the door's screen works again")
            self.problem = None
        self.frames += 1

    def next_look(self) -> float:
        """Seconds until the bar's next step (at most MAX_SLEEP_SECONDS)."""
        if self.codes is None:
            return MAX_SLEEP_SECONDS
        step = self.codes.window_seconds / BAR_STEPS
        return min(MAX_SLEEP_SECONDS, self.codes.seconds_left(self._door_time()) % step + 0.001)

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
                pause = self.next_look()
            except Exception:  # a bug here must not end the screen for good
                log.exception("screen refresh failed")
                pause = 1.0
            if self._stop.wait(pause):
                return
