"""Messages handed from paho's network thread to the fleet writer, taken in batches.

A `queue.Queue` read one message at a time wakes the writer for every message while it gathers a
batch. Here the writer is woken twice per batch at most: when the first message arrives, and when a
whole batch is waiting (or its time is up); what it took and has not finished is counted, so the
consumer can say when all it received is stored. (Measured against the queue, the ingest rate was
about the same: paho's thread and the writer's work, not the wake-ups, set it.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

_T = TypeVar("_T")


class BatchInbox(Generic[_T]):
    """Many producers put; one consumer takes up to `most` items, waiting at most `window` seconds
    after the first for the rest, and says when it has finished with what it took."""

    def __init__(self, most: int, window: float) -> None:
        self._most = most
        self._window = window
        self._items: deque[_T] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._open = 0  # put, and not yet finished by the consumer
        self._closed = False

    def put(self, item: _T) -> None:
        with self._ready:
            self._items.append(item)
            self._open += 1
            if len(self._items) == 1 or len(self._items) >= self._most:
                self._ready.notify()

    def close(self) -> None:
        """No more items: the consumer takes what is left, then an empty batch."""
        with self._ready:
            self._closed = True
            self._ready.notify()

    def take(self) -> list[_T]:
        """The next batch (waiting for its first item); empty only once closed and emptied."""
        with self._ready:
            while not self._items and not self._closed:
                self._ready.wait()
            if len(self._items) < self._most and not self._closed:
                deadline = time.monotonic() + self._window
                while len(self._items) < self._most and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
            return [self._items.popleft() for _ in range(min(self._most, len(self._items)))]

    def finished(self, count: int) -> None:
        """The consumer is done with `count` items it took (stored, or given up on)."""
        with self._ready:
            self._open -= count

    @property
    def unfinished(self) -> int:
        """Items put and not yet finished (waiting, or in the batch being written)."""
        return self._open
