"""The fleet writer's inbox: batches of at most `most`, nothing lost at close, unfinished counted."""

from __future__ import annotations

import threading

from officepass.inbox import BatchInbox


def test_a_full_batch_is_taken_at_once_and_the_rest_after_the_window() -> None:
    inbox: BatchInbox[int] = BatchInbox(most=3, window=0.01)
    for item in range(7):
        inbox.put(item)
    assert inbox.take() == [0, 1, 2]
    assert inbox.take() == [3, 4, 5]
    assert inbox.take() == [6]  # fewer than `most`: after the window
    assert inbox.unfinished == 7
    inbox.finished(7)
    assert inbox.unfinished == 0


def test_close_hands_over_what_is_left_then_an_empty_batch() -> None:
    inbox: BatchInbox[str] = BatchInbox(most=10, window=60.0)
    inbox.put("a")
    inbox.put("b")
    inbox.close()
    assert inbox.take() == ["a", "b"]  # no 60 s wait once closed
    assert inbox.take() == []


def test_a_waiting_consumer_is_woken_by_the_batch_that_fills() -> None:
    inbox: BatchInbox[int] = BatchInbox(most=50, window=60.0)
    taken: list[list[int]] = []
    consumer = threading.Thread(target=lambda: taken.append(inbox.take()))
    consumer.start()
    for item in range(50):
        inbox.put(item)
    consumer.join(30)  # woken by the 50th put, not by the 60 s window
    assert not consumer.is_alive()
    assert taken == [list(range(50))]
