"""`doorctl run`: wire the journal, the decision core and the reactor together."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from controller.cloud import CloudSync
from controller.config import Config
from controller.core import DoorCore
from controller.decision import Event
from controller.journal import Journal, JournalError
from controller.lock import LockController
from controller.reactor import Reactor
from controller.sdnotify import Notifier
from controller.status_socket import StatusServer, status_socket_path
from drivers.gpio import DoorPins
from drivers.platform import Platform
from drivers.readers import CodeReader
from drivers.relay import RelayGuard

log = logging.getLogger("doorctl")

TICK_SECONDS = 1.0
FLOOR_SAVE_SECONDS = 60.0
PRUNE_SECONDS = 3600.0


def setup_logging() -> None:
    # journald stamps time and unit itself: one short line per record, no secrets.
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True
    )


class DoorDaemon:
    def __init__(self, config: Config, platform: Platform) -> None:
        self.config = config
        self.platform = platform
        # The relay first: it is driven off before the journal, readers or network exist.
        self.pins = DoorPins.open(config.lock, platform.pin_factory)
        self.reactor = Reactor()
        self.guard = RelayGuard(
            self.pins.relay,
            config.lock.max_unlock_seconds,
            on_trip=lambda on_for: self.reactor.post(lambda: self.lock.relay_tripped(on_for)),
        )
        self.notifier = Notifier()
        self.journal = Journal(config.storage.path)
        self.core = DoorCore(config, self.journal)
        self.lock = LockController(config.lock, self.pins, self.guard, self.reactor, self.core)
        self.readers = [platform.make_reader(r) for r in config.readers]
        self.reader_health: dict[str, str] = {r.name: "ok" for r in self.readers}
        self.cloud: CloudSync | None = None
        if config.mqtt is not None:
            self.cloud = CloudSync(config, self.reactor, self.core, self.status_fields, self.lock.unlock)
            cloud = self.cloud
            self.core.listeners.append(lambda events: (cloud.drain(), cloud.state_changed()))
            self.lock.on_change = cloud.state_changed
        usec = os.environ.get("WATCHDOG_USEC", "")
        # Ping at half the interval systemd asked for (1 s when not under a watchdog).
        self._ping_every = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 1.0
        self._last_ping = 0.0

    def status_fields(self) -> dict[str, object]:
        """The door's live status (the MQTT status payload, less online/version/ts)."""
        return {
            "lock": self.lock.lock_state,
            "door": self.lock.door_state,
            "alarms": sorted(self.lock.alarms),
            "readers": dict(self.reader_health),
            "clock_synced": self.core.clock.synced(),
        }

    def snapshot(self) -> dict[str, object]:
        """Everything `doorctl status` shows (reactor thread)."""
        from controller.journal import rfc3339

        return {
            "store": self.config.door.store,
            "door_name": self.config.door.name,
            **self.status_fields(),
            "seats": self.core.seats(),
            "sessions": [
                {"member": s.member, "state": s.state, "checked_in_at": rfc3339(s.checked_in_at),
                 "deadline": rfc3339(s.deadline), "overdue": s.overdue}
                for s in self.core.state.sessions.values()
            ],
            "backlog": self.journal.backlog(),
            "cloud": None if self.cloud is None else ("connected" if self.cloud.connected else "offline"),
            "platform": self.platform.name,
            "recent_events": [e.payload(self.config.door.store, self.config.door.name)
                              for e in self.journal.recent_events(15)],
        }

    def _ping_watchdog(self) -> None:
        # Sent from the reactor loop itself, so a hung loop stops the pings and systemd acts.
        now = time.monotonic()
        if now - self._last_ping >= self._ping_every:
            self._last_ping = now
            self.notifier.watchdog()

    # --- readers ------------------------------------------------------------------------

    def _start_readers(self) -> None:
        for reader in self.readers:
            reader.start(
                deliver=lambda text, seen, r=reader: self.reactor.post(lambda: self._on_code(r, text, seen)),
                health=lambda ok, detail, r=reader: self.reactor.post(lambda: self._on_health(r, ok, detail)),
            )

    def _on_code(self, reader: CodeReader, text: str, seen_at: float) -> None:
        handled = self.core.present(text, reader.name, reader.side)  # type: ignore[arg-type]
        if handled.decision is not None and handled.decision.unlock:
            self.lock.unlock()
        if not handled.ignored:
            # Seen-to-decided time: the door's own view of its reader latency.
            log.info("code at %s decided %.1f ms after its frame (frame_t=%.6f)", reader.name,
                     (time.monotonic() - seen_at) * 1000, seen_at)

    def _on_health(self, reader: CodeReader, ok: bool, detail: str) -> None:
        state = "ok" if ok else "fault"
        if self.reader_health.get(reader.name) == state:
            return
        self.reader_health[reader.name] = state
        if ok:
            log.info("reader %s ok: %s", reader.name, detail)
            self.core.record(Event("reader_recovered", None, "system", None, {"reader": reader.name}))
        else:
            log.error("reader %s fault: %s", reader.name, detail)
            self.core.record(Event("reader_fault", None, "system", detail, {"reader": reader.name}))
        if self.cloud is not None:
            self.cloud.state_changed()

    def _tick(self) -> None:
        self.core.tick()

    def _save_floor(self) -> None:
        try:
            self.journal.save_floor(self.core.clock.floor)
        except JournalError as exc:
            log.error("%s", exc)

    def _prune(self) -> None:
        try:
            events, codes = self.journal.prune(self.core.clock.now())
        except JournalError as exc:
            log.error("%s", exc)
            return
        if events or codes:
            log.info("pruned %d delivered events, %d expired used codes", events, codes)

    def status_line(self) -> str:
        seats = self.core.seats()
        return (
            f"{self.config.door.store}/{self.config.door.name}: {seats['occupied']}/{seats['capacity']} "
            f"seats {seats['symbol']}, backlog {self.journal.backlog()}"
        )

    def _stop_from_signal(self) -> None:
        # Its own thread: the signal may have interrupted the reactor anywhere, even inside a lock.
        self.guard.force_off()
        self.reactor.stop()

    def run(self) -> int:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: relay off, stopping", signal.Signals(signum).name)
            threading.Thread(target=self._stop_from_signal, name="stop").start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.reactor.loop_hooks.append(self._ping_watchdog)
        self.reactor.every(TICK_SECONDS, self._tick)
        self.reactor.every(FLOOR_SAVE_SECONDS, self._save_floor)
        self.reactor.every(PRUNE_SECONDS, self._prune)
        self.reactor.post(self._prune)
        self.reactor.post(self.lock.start)
        status_path = status_socket_path(self.config.storage.path)
        status_server = StatusServer(status_path, self.reactor, self.snapshot)
        status_server.start()
        self._start_readers()
        if self.cloud is not None:
            self.cloud.start()
        status = self.status_line()
        log.info("ready: %s", status)
        self.notifier.ready(status)
        try:
            self.reactor.run()
        finally:
            self.guard.force_off()
            status_server.close()
            if self.cloud is not None:
                self.cloud.stop()
            for reader in self.readers:
                reader.stop()
            self.notifier.stopping()
            self._save_floor()
            self.journal.close()
            self.pins.close()
            self.platform.close()
            log.info("stopped")
        return 0


def run_daemon(config: Config, platform: Platform) -> int:
    setup_logging()
    try:
        daemon = DoorDaemon(config, platform)
    except JournalError as exc:
        log.error("%s", exc)
        return 1
    return daemon.run()
