"""The outbox ledger: every journaled event to the broker once acknowledged, in `seq` order.

The ledger keeps a window of events in flight (QoS 1), marks an event delivered on the PUBACK of
that very publish, and reads the journal only for what it does not hold already: events the door
just wrote are handed over as they were written (no read back), and the journal is read only after
a restart, an outage or a backlog larger than one batch.

Threads: `acked` runs on paho's network thread and only records and posts; the rest runs on the
reactor thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from controller.journal import JournaledEvent

WINDOW = 200  # events in flight before waiting for PUBACKs
BATCH = 1000  # outbox rows read at a time, and the most events held in memory


class OutboxLedger:
    def __init__(
        self,
        read: Callable[[int, int], list[JournaledEvent]],
        send: Callable[[JournaledEvent], int | None],
        delivered: Callable[[list[int]], None],
        post: Callable[[Callable[[], None]], None],
    ) -> None:
        self._read = read  # (after_seq, limit) -> undelivered events from the journal
        self._send = send  # publish one event; its paho mid, or None when paho refused it outright
        self._delivered = delivered  # mark seqs delivered in the journal
        self._post = post  # run on the reactor
        self._queue: deque[JournaledEvent] = deque()  # read or handed over, not yet sent
        self._last_queued = 0  # highest seq queued or sent
        self._caught_up = False  # the journal held nothing after _last_queued when last read
        self.active = False  # connected: sending
        # Every publish in flight, by paho mid: the event's seq, or None for anything else. Guarded by
        # _lock (the network thread acks). A PUBACK whose mid is not here yet arrived before publish()
        # returned: it waits in _early_acks until the publisher claims it, so nothing is left there.
        self._lock = threading.Lock()
        self._inflight: dict[int, int | None] = {}
        self._events_inflight = 0
        self._early_acks: set[int] = set()
        self._acked: list[int] = []
        self._flush_posted = False

    # --- reactor ---------------------------------------------------------------------------------

    def resume(self) -> None:
        """Connected (again): events handed to paho before the outage are resent by paho itself;
        continue after them, from the journal."""
        with self._lock:
            pending = sorted(seq for seq in self._inflight.values() if seq is not None)
        self._queue.clear()
        self._last_queued = pending[-1] if pending else 0
        self._caught_up = False
        self.active = True
        self.drain()

    def pause(self) -> None:
        self.active = False

    def written(self, events: list[JournaledEvent]) -> None:
        """Events the door just journaled: sent from memory when the ledger is caught up."""
        if (self.active and self._caught_up and events and events[0].seq == self._last_queued + 1
                and len(self._queue) + len(events) <= BATCH):
            self._queue.extend(events)
            self._last_queued = events[-1].seq
        else:
            self._caught_up = False
        self.drain()

    def drain(self) -> None:
        """Send undelivered events in seq order, keeping at most WINDOW in flight."""
        while self.active:
            with self._lock:
                room = WINDOW - self._events_inflight
            if room <= 0:
                return
            if not self._queue:
                if self._caught_up:
                    return
                batch = self._read(self._last_queued, BATCH)
                self._caught_up = len(batch) < BATCH
                if not batch:
                    return
                self._queue.extend(batch)
                self._last_queued = batch[-1].seq
            for _ in range(min(room, len(self._queue))):
                event = self._queue.popleft()
                # If the broker went away mid-drain, paho holds this message and resends it on
                # reconnect; it stays in flight until its PUBACK comes.
                self.track(self._send(event), event.seq)

    def track(self, mid: int | None, seq: int | None = None) -> None:
        """Every publish is tracked (events or not), so every PUBACK finds its publish."""
        if mid is None:
            return  # not queued by paho at all: no PUBACK will come (an event stays undelivered)
        with self._lock:
            if mid in self._early_acks:
                self._early_acks.discard(mid)
                if seq is not None:
                    self._acked.append(seq)
                return
            self._inflight[mid] = seq
            if seq is not None:
                self._events_inflight += 1

    def _flush(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
            self._flush_posted = False
        if acked:
            self._delivered(acked)
        self.drain()

    # --- network thread --------------------------------------------------------------------------

    def acked(self, mid: int) -> None:
        with self._lock:
            if mid not in self._inflight:
                self._early_acks.add(mid)  # PUBACK before publish() returned its mid
                return
            seq = self._inflight.pop(mid)
            if seq is None:
                return
            self._events_inflight -= 1
            self._acked.append(seq)
            if self._flush_posted:
                return
            self._flush_posted = True
        self._post(self._flush)

    def waiting(self) -> tuple[int, int]:
        """(publishes awaiting their PUBACK, PUBACKs awaiting their publish): both drain to 0."""
        with self._lock:
            return len(self._inflight), len(self._early_acks)
