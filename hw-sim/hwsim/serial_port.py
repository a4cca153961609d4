"""A simulated serial scanner: a pseudo-terminal, so the door's pyserial reader runs for real.

The reader opens a stable symlink (like `/dev/serial/by-id/...`) that points at the
current pty; unplugging closes the pty and removes the link, replugging makes a new one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from pathlib import Path


class SimSerialPort:
    def __init__(self, link: Path) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self.plug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing: bytes pass as a scanner sends them
            self._master, self._slave = master, slave
            tmp = self.link.with_suffix(".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(os.ttyname(slave))
            tmp.replace(self.link)

    def unplug(self) -> None:
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    def send(self, data: bytes) -> None:
        with self._lock:
            if self._master is None:
                raise OSError("scanner unplugged")
            os.write(self._master, data)

    def close(self) -> None:
        self.unplug()
