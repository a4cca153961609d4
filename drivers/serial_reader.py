"""Serial QR scanner modules (USB CDC or UART) through pyserial.

Reconnects on unplug with backoff; a stable `/dev/serial/by-id/...` path
finds the same scanner again after it re-enumerates.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import serial

from drivers.readers import Deliver, Health, LineSplitter

log = logging.getLogger("doorctl.serial")

BACKOFF_START, BACKOFF_MAX = 0.2, 5.0


class SerialReader:
    def __init__(self, name: str, side: str, port: str, baudrate: int) -> None:
        self.name = name
        self.side = side
        self.port = port
        self.baudrate = baudrate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deliver: Deliver, health: Health) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(deliver, health), name=f"serial-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def _run(self, deliver: Deliver, health: Health) -> None:
        backoff = BACKOFF_START
        healthy: bool | None = None
        while not self._stop.is_set():
            try:
                port = serial.Serial(self.port, self.baudrate, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as exc:
                if healthy is not False:
                    health(False, f"cannot open {self.port}: {exc}")
                    healthy = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            health(True, f"{self.port} open")
            healthy = True
            splitter = LineSplitter()
            try:
                while not self._stop.is_set():
                    data = port.read(max(1, port.in_waiting))
                    if data:
                        seen = time.monotonic()
                        for line in splitter.feed(data):
                            deliver(line, seen)
            except (serial.SerialException, OSError) as exc:
                health(False, f"{self.port} lost: {exc}")
                healthy = False
            finally:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
