"""The reactor: door inputs overtake queued network work; timers on the monotonic clock."""

from __future__ import annotations

import threading
import time

from controller.reactor import Reactor


def test_urgent_work_overtakes_everything_queued() -> None:
    reactor = Reactor()
    order: list[str] = []
    gate = threading.Event()
    reactor.post(lambda: gate.wait(5))  # the loop is busy with one command
    for i in range(1000):  # a flood of commands waits behind it
        reactor.post(lambda i=i: order.append(f"cmd{i}"))
    reactor.post_urgent(lambda: order.append("exit_button"))
    reactor.post(reactor.stop)
    thread = threading.Thread(target=reactor.run)
    thread.start()
    gate.set()
    thread.join(10)
    assert order[0] == "exit_button", "served right after the item in hand, ahead of 1,000 commands"
    assert order[1:] == [f"cmd{i}" for i in range(1000)], "the rest keep their order"


def test_a_raising_handler_does_not_stop_the_loop() -> None:
    reactor = Reactor()
    done: list[int] = []

    def broken() -> None:
        raise RuntimeError("bug")

    reactor.post(broken)
    reactor.post(lambda: done.append(1))
    reactor.post(reactor.stop)
    reactor.run()
    assert done == [1]


def test_timers_follow_the_monotonic_clock() -> None:
    now = [100.0]
    reactor = Reactor(monotonic=lambda: now[0])
    fired: list[float] = []
    reactor.call_later(5, lambda: fired.append(now[0]))
    reactor.call_later(1, reactor.stop)
    thread = threading.Thread(target=reactor.run)
    thread.start()
    time.sleep(0.05)
    now[0] = 101.0  # one monotonic second: the stop timer, not the 5 s one
    thread.join(5)
    assert fired == [] and not thread.is_alive()
