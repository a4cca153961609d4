"""`doorctl run`: the pins, the journal, the door core, the readers and the cloud link, around one reactor.

Threads: gpiozero's pin callbacks, the relay guard, the readers, paho and the status socket only
post work to the reactor (door inputs in its urgent lane); the reactor thread runs everything
that reads or changes the door's state.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from controller.clock import kernel_clock_state
from controller.cloud import CloudSync
from controller.config import Config, ConfigError, load_mqtt_credentials
from controller.core import DoorCore
from controller.decision import (
    BoltSensor,
    CloudProblem,
    DoorSensor,
    ExitButton,
    FireInput,
    Input,
    ReaderHealth,
    RelayTripped,
    Sensed,
)
from controller.door_port import DoorPort
from controller.journal import Journal, JournalError
from controller.presence import PresenceSecretError, load_secret
from controller.reactor import Reactor
from controller.remote_config import RemoteConfig
from controller.sdnotify import Notifier
from controller.status_socket import StatusServer, status_socket_path
from controller.updates import UpdateWatch
from drivers.gpio import DoorPins
from drivers.platform import Platform
from drivers.readers import CodeReader
from drivers.relay import RelayGuard
from wire.payloads import UpdateReport
from wire.presence import PresenceCodes
from wire.vocab import SessionState, Side

if TYPE_CHECKING:
    from controller.presence_display import PresenceDisplay

log = logging.getLogger("doorctl")

TICK_SECONDS = 1.0
FLOOR_SAVE_SECONDS = 60.0
PRUNE_SECONDS = 3600.0
STATUS_RETRY_SECONDS = 5.0
EXIT_ALREADY_RUNNING = 2


def setup_logging() -> None:
    # journald stamps time and unit itself: one short line per record, no secrets.
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True
    )


class AlreadyRunning(Exception):
    pass


def take_instance_lock(storage_path: str) -> int:
    """One daemon per state directory: an exclusive flock on the directory itself, held for the
    process's life (the returned descriptor). A directory, not a lock file: it works on a read-only
    file system too, where the door must still start (degraded) so the exit button works.

    Raises AlreadyRunning naming the pid that holds it. Taken before anything is touched (pins,
    journal, sockets), so a second daemon changes nothing.
    """
    state = Path(storage_path).parent
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _flock_holder(os.fstat(fd))
        os.close(fd)
        raise AlreadyRunning(f"another doorctl (pid {holder or 'unknown'}) already runs on {state}") from None
    return fd


def _flock_holder(st: os.stat_result) -> int | None:
    """The pid holding a flock on this inode, from /proc/locks."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(st.st_ino):
            return int(fields[4]) if fields[4].isdigit() else None
    return None


class DoorDaemon:
    def __init__(self, config: Config, platform: Platform, remote: RemoteConfig | None = None) -> None:
        self.config = config
        self.platform = platform
        self.remote = remote
        self.restart_for: str | None = None  # set when the daemon stops to start again changed
        self._pending_since: float | None = None
        self._last_update_report: UpdateReport | None = None
        # The relay first: it is driven off before the journal, readers or network exist.
        self.pins = DoorPins.open(config.lock.wiring, platform.pin_factory)
        self.reactor = Reactor()
        self.guard = RelayGuard(
            self.pins.relay,
            config.lock.max_unlock_seconds,
            on_trip=lambda on_for: self._urgent(RelayTripped(on_for, config.lock.max_unlock_seconds)),
        )
        self.notifier = Notifier()
        self.journal = Journal.or_stand_in(config.storage.path)
        if self.journal.unavailable is not None:
            log.error("the journal cannot be opened, the door runs degraded (codes refused, exit button "
                      "and fire work) and retries it every second: %s", self.journal.unavailable)
        self.core = DoorCore(config, self.journal, self.guard, presence=self._presence_codes(config))
        self.readers = [platform.make_reader(r) for r in config.readers]
        # How the cloud link (and the status view) see the door.
        self.updates = UpdateWatch(config.storage.state_dir, config.update.release)
        self.port = DoorPort(self.core, [r.name for r in config.readers], self.reactor.post, remote=remote,
                             update=self.updates.report)
        self.cloud: CloudSync | None = None
        self._cloud_problem: str | None = None
        self._display_problem: str | None = None
        if config.mqtt is not None:
            try:
                credentials = load_mqtt_credentials(config.mqtt)
            except ConfigError as exc:
                # A bad certificate or password file must not keep the door from working: offline,
                # with the cloud_config alarm naming the key.
                self._cloud_problem = "; ".join(exc.problems)
                log.error("cloud link not started, the door runs offline: %s", self._cloud_problem)
            else:
                self.cloud = CloudSync(config, credentials, self.reactor, self.port)
                self.core.listeners.append(self.cloud.written)
                self.core.on_publish.append(self.cloud.state_changed)
        self.display = self._presence_display(config, platform)
        usec = os.environ.get("WATCHDOG_USEC", "")
        # Ping at half the interval systemd asked for (1 s when not under a watchdog).
        self._ping_every = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 1.0
        self._last_ping = 0.0
        self._armed_due: float | None = None

    @staticmethod
    def _presence_codes(config: Config) -> PresenceCodes | None:
        presence = config.presence
        if presence is None:
            return None
        try:
            secret = load_secret(config.storage.state_dir)
        except PresenceSecretError as exc:
            # Without its secret the door cannot tell a fresh scan: app commands that need presence
            # are refused not_present; codes at the door and the exit button work as ever.
            log.error("presence codes unavailable, app commands needing presence are refused: %s", exc)
            return None
        return PresenceCodes(secret, config.door.store, config.door.name, presence.window_seconds,
                             presence.accept_seconds)

    def _presence_display(self, config: Config, platform: Platform) -> PresenceDisplay | None:
        if config.presence is None or config.presence.framebuffer is None:
            return None
        # Drawing needs OpenCV: loaded only by a door with a screen, so others start sooner.
        from controller.presence_display import PresenceDisplay
        try:
            screen = platform.make_screen(config.presence.framebuffer)
        except (OSError, ValueError, RuntimeError) as exc:
            log.error("the door's screen cannot be used, the door works without it (doorctl doctor): %s", exc)
            self._display_problem = str(exc)
            return None
        cloud = self.cloud
        return PresenceDisplay(screen, self.core.presence, config.presence.url, config.door.store,
                               config.door.name, self.core.clock.now,
                               online=lambda: cloud is not None and cloud.connected)

    def _display_view(self) -> str | None:
        if self.config.presence is None or self.config.presence.framebuffer is None:
            return None
        if self.display is None:
            return f"not started: {self._display_problem}"
        return f"fault: {self.display.problem}" if self.display.problem else "ok"

    # --- views ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything `doorctl status` shows (reactor thread)."""
        status = self.port.status().to_dict()
        for key in ("online", "ts"):
            status.pop(key)
        return {
            "store": self.config.door.store,
            "door_name": self.config.door.name,
            **status,
            "seats": self.core.seats().to_dict(),
            "sessions": [s.to_dict() for s in self.core.sessions().values()],
            **self._journal_view(),
            "unjournaled": self.core.unjournaled,
            "cloud": self._cloud_view(),
            "display": self._display_view(),
            "platform": self.platform.name,
        }

    def _journal_view(self) -> dict[str, Any]:
        # A journal that cannot be read must not cost the technician the rest of the status.
        try:
            return {
                "backlog": self.journal.backlog(),
                "recent_events": [e.to_wire(self.config.door.store, self.config.door.name).to_dict()
                                  for e in self.journal.recent_events(15)],
            }
        except (sqlite3.Error, ValueError) as exc:
            return {"backlog": None, "recent_events": [], "journal_unreadable": str(exc)}

    def _cloud_view(self) -> str | None:
        if self._cloud_problem is not None:
            return f"not started: {self._cloud_problem}"
        if self.cloud is None:
            return None
        return "connected" if self.cloud.connected else "offline"

    # --- inputs -----------------------------------------------------------------------------

    def _urgent(self, inp: Input) -> None:
        """Any thread: a door input, served ahead of network and reader work."""
        self.reactor.post_urgent(lambda: self.core.handle(inp))

    def _wire_pins(self) -> None:
        pins = self.pins

        def wire(device: Any, on: Input, off: Input) -> None:
            if device is not None:
                # gpiozero calls these on its own threads: only hand the input to the reactor.
                device.when_activated = lambda: self._urgent(on)
                device.when_deactivated = lambda: self._urgent(off)

        wire(pins.exit_button, ExitButton(True), ExitButton(False))
        wire(pins.fire_alarm, FireInput(True), FireInput(False))
        wire(pins.door_closed, DoorSensor(True), DoorSensor(False))
        wire(pins.bolt_retracted, BoltSensor(True), BoltSensor(False))

    def _sense(self) -> None:
        pins = self.pins
        self.core.handle(Sensed(
            door_closed=None if pins.door_closed is None else bool(pins.door_closed.is_active),
            bolt_retracted=None if pins.bolt_retracted is None else bool(pins.bolt_retracted.is_active),
            fire=pins.fire_alarm is not None and bool(pins.fire_alarm.is_active),
            exit_pressed=pins.exit_button is not None and bool(pins.exit_button.is_active),
        ))

    def _start_readers(self) -> None:
        for reader in self.readers:
            reader.start(deliver=self._deliverer(reader), health=self._health_reporter(reader))

    def _deliverer(self, reader: CodeReader) -> Callable[[str, float], None]:
        def deliver(text: str, seen_at: float) -> None:
            self.reactor.post(lambda: self._on_code(reader, text, seen_at))

        return deliver

    def _health_reporter(self, reader: CodeReader) -> Callable[[bool, str], None]:
        def health(ok: bool, detail: str) -> None:
            self.reactor.post(lambda: self.core.handle(ReaderHealth(reader.name, ok, detail)))

        return health

    def _on_code(self, reader: CodeReader, text: str, seen_at: float) -> None:
        handled = self.core.present(text, reader.name, Side(reader.side))
        if not handled.ignored:
            # Seen-to-decided time: the door's own view of its reader latency.
            log.info("code at %s decided %.1f ms after its frame (frame_t=%.6f)", reader.name,
                     (time.monotonic() - seen_at) * 1000, seen_at)

    # --- housekeeping -------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        # The machine's next monotonic deadline (pulse end, alarm timers): a timer exactly then,
        # so a pulse ends on time rather than at the next 1 s tick.
        due = self.core.next_mono_due()
        if due is not None and due != self._armed_due:
            self._armed_due = due
            self.reactor.call_later(max(0.0, due - time.monotonic()), self.core.tick)

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

    def quiet(self) -> bool:
        """No moment to restart in: the relay on, a command being decided, a member mid-checkout."""
        busy = self.guard.energized or (self.cloud is not None and self.cloud.commands.in_flight > 0)
        return not busy and not any(s.state is SessionState.CHECKING_OUT
                                    for s in self.core.state.sessions.values())

    def _apply_when_quiet(self) -> None:
        """What waits for a quiet moment (at most `update.quiet_wait_minutes`, and always for the relay
        to be off): a checked configuration, kept and then run by stopping to be started again on it
        (systemd's Restart=always), and a staged release, which the update agent switches to. A
        configuration that changes only `[update]` needs neither and is applied at once."""
        remote = self.remote
        if remote is not None and remote.pending is not None and remote.live():
            self._apply_live(remote)
        self.updates.tick()
        report = self.updates.report()
        if report != self._last_update_report:
            self._last_update_report = report
            self._publish_status()
        wanted = remote is not None and remote.pending is not None
        if not (wanted or self.updates.switch_wanted) or self.restart_for is not None:
            self._pending_since = None
            return
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
        waited = now - self._pending_since
        if self.guard.energized:
            return  # never cut a member's unlock short, however long the wait
        if not self.quiet() and waited < self.config.update.quiet_wait_minutes * 60:
            return
        how = "the door is quiet" if self.quiet() else f"waited {waited / 60:.0f} min for a quiet moment"
        if remote is not None and remote.pending is not None:
            self._restart_on_config(remote, how)
        elif self.updates.switch():
            log.info("release %s: switch asked (%s)", self.updates.release, how)
            self._pending_since = None
            self._publish_status()

    def _apply_live(self, remote: RemoteConfig) -> None:
        try:
            self.config = remote.applied_live()
        except OSError as exc:
            assert remote.pending is not None
            remote.refused = f"v{remote.pending.document.version} not kept: {exc}"
            remote.pending = None
            log.error("configuration %s", remote.refused)
            return
        self.updates.release = self.config.update.release
        log.info("configuration v%s applied (it changes only [update]: no restart)", remote.applied)
        self._publish_status()

    def _restart_on_config(self, remote: RemoteConfig, how: str) -> None:
        assert remote.pending is not None
        try:
            version = remote.keep_pending()
        except OSError as exc:
            remote.refused = f"v{remote.pending.document.version} not kept: {exc}"
            remote.pending = None
            log.error("configuration %s", remote.refused)
            return
        log.info("configuration v%d kept (%s): restarting to run with it", version, how)
        self.restart_for = f"configuration v{version}"
        self.guard.force_off()
        self.reactor.stop()

    def _publish_status(self) -> None:
        if self.cloud is not None:
            self.cloud.state_changed()

    def _start_status(self, server: StatusServer) -> None:
        # A state directory that is read-only (or full) must not keep the door from running: the
        # status socket comes up once it can be made.
        try:
            server.start()
        except OSError as exc:
            log.warning("status socket %s not available (retrying every %.0f s): %s", server.path,
                        STATUS_RETRY_SECONDS, exc)
            self.reactor.call_later(STATUS_RETRY_SECONDS, lambda: self._start_status(server))

    def _ping_watchdog(self) -> None:
        # Sent from the reactor loop itself, so a hung loop stops the pings and systemd acts.
        now = time.monotonic()
        if now - self._last_ping >= self._ping_every:
            self._last_ping = now
            self.notifier.watchdog()

    def status_line(self) -> str:
        seats = self.core.seats()
        return (
            f"{self.config.door.store}/{self.config.door.name}: {seats.occupied}/{seats.capacity} "
            f"seats {seats.symbol}, backlog {self.journal.backlog()}"
        )

    def _stop_from_signal(self) -> None:
        # Its own thread: the signal may have interrupted the reactor anywhere, even inside a lock.
        self.guard.force_off()
        self.reactor.stop()

    def run(self) -> int:
        """The process's main loop: SIGTERM and SIGINT drop the relay first, then stop."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: relay off, stopping", signal.Signals(signum).name)
            threading.Thread(target=self._stop_from_signal, name="stop").start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        return self.serve()

    def stop(self) -> None:
        """Thread-safe: relay off, leave serve()."""
        self._stop_from_signal()

    def serve(self) -> int:
        """Start everything around the reactor and run it until stopped, then shut down."""
        self.reactor.loop_hooks.append(self._ping_watchdog)
        self.reactor.loop_hooks.append(self._arm_timer)
        self.reactor.every(TICK_SECONDS, self.core.tick)
        self.reactor.every(FLOOR_SAVE_SECONDS, self._save_floor)
        self.reactor.every(PRUNE_SECONDS, self._prune)
        self.reactor.every(TICK_SECONDS, self._apply_when_quiet)
        self._wire_pins()
        self.reactor.post_urgent(self._sense)
        if self._cloud_problem is not None:
            problem = self._cloud_problem
            self.reactor.post(lambda: self.core.handle(CloudProblem(problem)))
        self.reactor.post(self._prune)
        status_path = status_socket_path(self.config.storage.path)
        status_server = StatusServer(status_path, self.reactor, self.snapshot)
        self._start_status(status_server)
        self._start_readers()
        if self.cloud is not None:
            self.cloud.start()
        if self.display is not None:
            self.display.start()
        synced, detail = kernel_clock_state()
        if synced is None:
            log.error("cannot read the clock's NTP state (%s): app commands will be refused "
                      "clock_unsynced; allow adjtimex (the unit does)", detail)
        status = self.status_line()
        log.info("ready: %s", status)
        self.notifier.ready(status)
        try:
            self.reactor.run()
        finally:
            self.guard.force_off()
            if self.display is not None:
                self.display.stop()
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


def run_daemon(config: Config, platform: Platform, remote: RemoteConfig | None = None) -> int:
    setup_logging()
    try:
        daemon = DoorDaemon(config, platform, remote)
    except JournalError as exc:
        log.error("%s", exc)
        return 1
    return daemon.run()
