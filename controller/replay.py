"""Gap repair, the door's side (contract §4 `replay`): a consumer that found seqs missing asks, and
the door publishes those events again from its journal, the same event with the same id, in seq
order on its events topic, then `replay/result` with what it sent and the ranges it no longer holds.

One request at a time, in the order they came; a request for more than 1,000 is cut to its first
1,000. The work runs on the reactor in steps of REPLAY_STEP events, each its own task, so door inputs
(served first, in the urgent lane) and the live outbox are never held up by a replay.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.journal import JournaledEvent, JournalError
from wire.payloads import ReplayRequest, ReplayResult

log = logging.getLogger("doorctl.replay")

REPLAY_STEP = 100  # events read and published per reactor task
MAX_WAITING = 100  # requests queued; past that the oldest waiting one is dropped (the consumer asks again)


@dataclass
class _Serving:
    request: ReplayRequest
    next_seq: int
    sent: int = 0
    held: list[int] = field(default_factory=list)  # seqs found, for the missing ranges


class ReplayServer:
    def __init__(self, epoch: Callable[[], str], read: Callable[[int, int], list[JournaledEvent]],
                 send_event: Callable[[JournaledEvent], None], send_result: Callable[[ReplayResult], None],
                 post: Callable[[Callable[[], None]], None]) -> None:
        self._epoch = epoch  # the journal's epoch now
        self._read = read  # (first, last) -> events held, in seq order
        self._send_event = send_event
        self._send_result = send_result
        self._post = post
        self._waiting: deque[ReplayRequest] = deque()
        self._serving: _Serving | None = None

    def asked(self, request: ReplayRequest) -> None:
        """Reactor: a consumer's request, served after those before it."""
        if len(self._waiting) >= MAX_WAITING:
            dropped = self._waiting.popleft()
            log.warning("replay request %s %d-%d dropped: %d waiting", dropped.epoch, dropped.first,
                        dropped.last, MAX_WAITING)
        self._waiting.append(request.cut())
        if self._serving is None:
            self._start_next()

    def _start_next(self) -> None:
        if not self._waiting:
            self._serving = None
            return
        request = self._waiting.popleft()
        self._serving = _Serving(request, request.first)
        self._post(self._step)

    def _step(self) -> None:
        serving = self._serving
        if serving is None:
            return
        request = serving.request
        if request.epoch != self._epoch():
            # Another numbering (a journal made anew): nothing of that epoch is held any more.
            self._finish(serving)
            return
        last = min(request.last, serving.next_seq + REPLAY_STEP - 1)
        try:
            events = self._read(serving.next_seq, last)
        except JournalError as exc:
            log.error("replay of %d-%d stopped, the journal cannot be read: %s", serving.next_seq, last, exc)
            self._finish(serving)
            return
        for event in events:
            self._send_event(event)
            serving.held.append(event.seq)
        serving.sent += len(events)
        serving.next_seq = last + 1
        if serving.next_seq > request.last:
            self._finish(serving)
        else:
            self._post(self._step)

    def _finish(self, serving: _Serving) -> None:
        request = serving.request
        self._send_result(ReplayResult(request.epoch, request.first, request.last, serving.sent,
                                       missing_ranges(request.first, request.last, serving.held)))
        log.info("replayed %d events of %s %d-%d", serving.sent, request.epoch, request.first, request.last)
        self._start_next()


def missing_ranges(first: int, last: int, held: list[int]) -> tuple[tuple[int, int], ...]:
    """The [a, b] ranges of first..last not in `held` (sorted)."""
    out: list[tuple[int, int]] = []
    expected = first
    for seq in held:
        if seq > expected:
            out.append((expected, seq - 1))
        expected = max(expected, seq + 1)
    if expected <= last:
        out.append((expected, last))
    return tuple(out)
