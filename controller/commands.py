"""Command intake: app commands from the broker to the door's decision and back (contract §4).

On paho's network thread, `received` only bounds and posts: a payload far bigger than any member
code is answered `malformed` at once (its bytes are never queued), and past MAX_PENDING commands
waiting for the reactor the answer is `busy`; so what waits is bounded in count and in bytes. On the
reactor, `_decide` asks the door through its port, answers, and only then acknowledges the command to
the broker (manual ack): a crash before that means redelivery, which the door's cti memory answers
with the first result.

Answers go to the command's response topic only when it is a service instance's reply topic for this
very door; anything else (another door's topic, the door's own status) gets `cmd/result`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from controller.door_port import DoorPort
from wire.codes import MAX_CODE_CHARS
from wire.payloads import BUSY_COMMAND, MALFORMED_COMMAND, CommandReply
from wire.topics import DoorTopics

# A member code is at most 512 characters; anything bigger is not one and is not kept.
MAX_COMMAND_BYTES = MAX_CODE_CHARS * 4
# QoS 1 commands the broker may send before we acknowledge one (MQTT 5 Receive Maximum). A broker
# may still send more (QoS 0, or a backlog on reconnect: mosquitto 2.0 sends its queue at once), so
# the door also bounds what waits for the reactor; past the bound a command is answered busy. At most
# MAX_COMMAND_BYTES each, what waits stays under MAX_PENDING * MAX_COMMAND_BYTES (~2 MB).
RECEIVE_MAXIMUM = 32
MAX_PENDING = 1000

Reply = Callable[[str, CommandReply, Any], None]  # topic, answer, correlation data or None
Ack = Callable[[int, int], object]  # mid, qos


class CommandIntake:
    def __init__(self, topics: DoorTopics, port: DoorPort, post: Callable[[Callable[[], None]], None],
                 reply: Reply, ack: Ack, connected: Callable[[], bool]) -> None:
        self._topics = topics
        self._port = port
        self._post = post
        self._reply = reply
        self._ack = ack
        self._connected = connected
        self._lock = threading.Lock()
        self._pending = 0  # posted to the reactor, not yet decided

    @property
    def in_flight(self) -> int:
        """Commands received and not yet decided."""
        with self._lock:
            return self._pending

    # --- network thread --------------------------------------------------------------------------

    def received(self, payload: bytes, props: Any, mid: int, qos: int) -> None:
        if len(payload) > MAX_COMMAND_BYTES:
            self._answer(MALFORMED_COMMAND, props)
            self._ack(mid, qos)
            return
        with self._lock:
            shed = self._pending >= MAX_PENDING
            if not shed:
                self._pending += 1
        if shed:
            # Only QoS 0 floods get here (the broker's Receive Maximum bounds QoS 1): answer
            # now, from this thread, rather than queue without bound.
            self._answer(BUSY_COMMAND, props)
            self._ack(mid, qos)
            return
        self._post(lambda: self._decide(payload, props, mid, qos))

    # --- reactor ---------------------------------------------------------------------------------

    def _decide(self, payload: bytes, props: Any, mid: int, qos: int) -> None:
        with self._lock:
            self._pending -= 1
        if not self._connected():
            # Not acknowledged: the broker sends it again when we are back, and its ttl decides then.
            return
        try:
            text: str | None = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = None
        self._answer(MALFORMED_COMMAND if not text else self._port.command(text), props)
        # After the decision is committed and answered: a crash before this means redelivery.
        self._ack(mid, qos)

    def _answer(self, reply: CommandReply, props: Any) -> None:
        asked = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        if isinstance(asked, str) and self._topics.may_reply_to(asked):
            self._reply(asked, reply, correlation)
        else:
            self._reply(self._topics.cmd_result, reply, correlation)
