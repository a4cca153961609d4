"""DoorPort: the one narrow way the cloud link talks to the door.

Everything here runs on the reactor thread (the cloud link's network thread only posts): the port
reads the door's state as wire payloads, hands the outbox its events, decides a command, and applies
a revocation list that its own thread verified. The cloud link never reaches into the core, its
journal, verifier or clock, and never calls back into the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from controller import __version__
from controller.core import DoorCore
from controller.decision import RevocationApplied
from controller.journal import JournaledEvent, JournalError
from controller.remote_config import RemoteConfig
from wire.codes import RevocationList
from wire.payloads import (
    MALFORMED_COMMAND,
    CommandReply,
    DoorEvent,
    DoorStatus,
    ReaderState,
    Seats,
    SessionInfo,
    UpdateReport,
)
from wire.rules import rfc3339
from wire.vocab import Side

log = logging.getLogger("doorctl.port")


class DoorPort:
    def __init__(self, core: DoorCore, reader_names: Sequence[str],
                 post: Callable[[Callable[[], None]], None], remote: RemoteConfig | None = None,
                 update: Callable[[], UpdateReport | None] = lambda: None) -> None:
        self._core = core
        self._post = post  # a task for the reactor, after the door inputs waiting
        self._revocation: _RevocationJob | None = None
        self._readers = tuple(reader_names)
        self._remote = remote
        self._update = update
        self.store = core.config.door.store
        self.door = core.config.door.name
        self.max_revoked_members = core.config.credentials.max_revoked_members
        # Pure and immutable: the revocation thread may verify with it.
        self.verify_revocation: Callable[[str, int], RevocationList] = core.verifier.verify_revocation

    # --- what the door shows -------------------------------------------------------------------

    def now(self) -> float:
        return self._core.clock.now()

    def status(self) -> DoorStatus:
        state = self._core.state
        return DoorStatus(
            lock=state.lock, door=state.physical.door, alarms=tuple(sorted(state.alarms)),
            readers={name: ReaderState.FAULT if name in state.faulty_readers else ReaderState.OK
                     for name in self._readers},
            clock_synced=self._core.clock.synced(), version=__version__, ts=rfc3339(self.now()),
            config_version=None if self._remote is None else self._remote.applied,
            config_refused=None if self._remote is None else self._remote.refused,
            update=self._update(),
        )

    def seats(self) -> Seats:
        return self._core.seats()

    def sessions(self) -> dict[str, SessionInfo]:
        return self._core.sessions()

    # --- the outbox ------------------------------------------------------------------------------

    def undelivered(self, after_seq: int, limit: int) -> list[JournaledEvent]:
        return self._core.journal.undelivered(after_seq=after_seq, limit=limit)

    def delivered(self, seqs: list[int]) -> None:
        try:
            self._core.journal.mark_delivered(seqs, at=self.now())
        except JournalError as exc:
            # Sent again after a restart: consumers drop duplicates by id (contract §4).
            log.error("delivered events not marked, they will be sent again: %s", exc)

    def events_between(self, first: int, last: int) -> list[JournaledEvent]:
        return self._core.journal.events_between(first, last)

    def epoch(self) -> str:
        return self._core.journal.epoch

    def event(self, event: JournaledEvent) -> DoorEvent:
        return event.to_wire(self.store, self.door)

    # --- what comes in ---------------------------------------------------------------------------

    def command(self, text: str) -> CommandReply:
        handled = self._core.present(text, Side.REMOTE.value, Side.REMOTE)
        decision = handled.decision
        if decision is None:
            return MALFORMED_COMMAND
        return CommandReply(handled.code.cti.hex() if handled.code else None, decision.ok, decision.result,
                            decision.reason)

    def configuration(self, payload: bytes) -> None:
        """A remote configuration document (contract §11): checked now, applied at a quiet moment."""
        if self._remote is not None:
            self._remote.offered(payload)

    def revocation(self, listing: RevocationList) -> None:
        """A verified list: stored and applied if newer than the one the door holds (and than one
        being stored). Written REVOCATION_STEP members at a time, each step its own reactor task, so
        the exit button and the door's sensors are served between steps."""
        current = max(v for v in (self._core.revocation_version, self._storing_version(), -1)
                      if v is not None)
        if listing.version <= current:
            log.info("revocation list version %d is not newer than ours (%d); ignored", listing.version,
                     current)
            return
        members = sorted(listing.members)
        chunks = [members[i:i + REVOCATION_STEP] for i in range(0, len(members), REVOCATION_STEP)] or [[]]
        running = self._revocation is not None
        self._revocation = _RevocationJob(listing, chunks)
        if not running:
            self._post(self._revocation_step)

    def _storing_version(self) -> int | None:
        return None if self._revocation is None else self._revocation.listing.version

    def _revocation_step(self) -> None:
        job = self._revocation
        if job is None:
            return
        core = self._core
        try:
            if job.next < len(job.chunks):
                core.journal.stage_revocation(job.chunks[job.next], first=job.next == 0)
                job.next += 1
                self._post(self._revocation_step)
                return
            core.journal.finish_revocation(job.listing.version)
        except JournalError as exc:
            self._revocation = None
            log.error("revocation list version %d not stored (it is applied when it comes again): %s",
                      job.listing.version, exc)
            return
        self._revocation = None
        listing = job.listing
        core.revocation_stored(listing.version, listing.members)
        core.handle(RevocationApplied(listing.version, len(listing.members)))
        log.info("revocation list version %d applied: %d members", listing.version, len(listing.members))


REVOCATION_STEP = 5000  # members written per reactor task (a few ms each)


class _RevocationJob:
    """A list being written step by step; a newer list replaces it (and starts the staging anew)."""

    def __init__(self, listing: RevocationList, chunks: list[list[str]]) -> None:
        self.listing = listing
        self.chunks = chunks
        self.next = 0
