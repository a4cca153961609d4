"""What changed in the fleet, told to the live pages (one notifier per instance; no page polls).

Writers (the fleet consumer, the offline watch, the console's actions) say what they changed after
they commit; each open page waits for its topic and reads its snapshot once per change (shared by
every page of the instance, web.live.Snapshots). On PostgreSQL every change is also sent with NOTIFY
and every instance LISTENs, so a door's message stored by one instance moves the pages of all; after
the listener had to reconnect, every topic counts as changed (a notification may have been missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("officepass.notifier")

CHANNEL = "officepass_fleet"
RECONNECT_SECONDS = (0.5, 1, 2, 5, 10)


class Change(StrEnum):
    SEATS = "seats"  # a store's seats (the store list)
    DOORS = "doors"  # a door's status or alarms (a member's page after a press)
    CONSOLE = "console"  # anything the console shows


_NAMES = {c.value for c in Change}


class FleetNotifier:
    def __init__(self, engine: Engine | None = None) -> None:
        self.instance = uuid.uuid4().hex[:12]  # its own NOTIFYs come back to it: told once, not twice
        self._versions = dict.fromkeys(Change, 0)
        self._lock = threading.Lock()
        self._waiters: dict[Change, set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {
            c: set() for c in Change}
        self._shared = engine is not None and engine.dialect.name == "postgresql"
        self._url = engine.url if engine is not None else None
        self._outbox: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._listen, name="notify-listen", daemon=True),
                         threading.Thread(target=self._send, name="notify-send", daemon=True)]
        self.listening = threading.Event()  # set while LISTEN is in place (PostgreSQL)

    def start(self) -> None:
        if self._shared:
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        if self._shared:
            for thread in self._threads:
                thread.join(5)

    def version(self, change: Change) -> int:
        return self._versions[change]

    def changed(self, changes: Iterable[Change]) -> None:
        """Called by a writer after its commit, from any thread."""
        chosen = set(changes)
        if not chosen:
            return
        self._bump(chosen)
        if self._shared:
            self._outbox.put(",".join(sorted(chosen)))

    async def wait(self, change: Change, seen: int, timeout: float) -> bool:
        """True once `change` moved past `seen`; False after `timeout` seconds without."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._versions[change] != seen:
                return True
            self._waiters[change].add(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters[change].discard(entry)

    def _bump(self, changes: Iterable[Change]) -> None:
        woken: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        with self._lock:
            for change in changes:
                self._versions[change] += 1
                for loop, future in self._waiters[change]:
                    woken.setdefault(loop, []).append(future)
                self._waiters[change].clear()
        for loop, futures in woken.items():  # one wake-up per event loop, however many pages wait
            with contextlib.suppress(RuntimeError):  # that loop is closed: its pages are gone
                loop.call_soon_threadsafe(_resolve, futures)

    # PostgreSQL: NOTIFY what this instance changed, LISTEN for what the others did.

    def _engine(self) -> Engine:
        assert self._url is not None
        return create_engine(self._url, poolclass=NullPool)

    def _send(self) -> None:
        engine, connection = self._engine(), None
        while True:
            payload = self._outbox.get()
            if payload is None:
                break
            for attempt in range(3):
                try:
                    if connection is None:
                        connection = engine.raw_connection()
                        connection.driver_connection.autocommit = True  # type: ignore[union-attr]
                    cursor = connection.cursor()
                    cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.instance}:{payload}"))
                    cursor.close()
                    break
                except Exception as exc:  # the database went away: the next attempt reconnects
                    log.warning("could not NOTIFY the other instances (%s): trying again", exc)
                    connection = None
                    if self._stop.wait(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]):
                        return
        engine.dispose()

    def _listen(self) -> None:
        engine, failures = self._engine(), 0
        while not self._stop.is_set():
            try:
                raw = engine.raw_connection()
                connection = raw.driver_connection
                connection.autocommit = True  # type: ignore[union-attr]
                connection.execute(f"LISTEN {CHANNEL}")  # type: ignore[union-attr]
                self.listening.set()
                if failures:  # what others changed while this one was away is unknown: all of it
                    self._bump(list(Change))
                failures = 0
                while not self._stop.is_set():
                    for note in connection.notifies(timeout=1.0):  # type: ignore[union-attr]
                        sender, _, names = note.payload.partition(":")
                        if sender != self.instance:
                            self._bump(Change(n) for n in names.split(",") if n in _NAMES)
                raw.close()
            except Exception as exc:
                self.listening.clear()
                failures += 1
                log.warning("listening for the other instances' changes failed (%s): reconnecting", exc)
                self._stop.wait(RECONNECT_SECONDS[min(failures - 1, len(RECONNECT_SECONDS) - 1)])
        engine.dispose()


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
