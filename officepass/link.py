"""The service's own MQTT link to the doors: an app button becomes a command, and the door's answer
comes back to the service's response topic with the press's correlation data (contract §4, §8);
a disable becomes the retained, signed revocation list.
"""

from __future__ import annotations

import logging
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from officepass.connection import ServiceConnection
from wire.acl import instance_of
from wire.payloads import CommandReply, ReplayRequest, WireError
from wire.topics import Kind, Topics

log = logging.getLogger("officepass.link")

ANSWER_SECONDS = 5.0  # no answer by then: the page shows the unlock-trouble screen (contract §8)


class DoorLink:
    """App buttons to doors and their answers back, on the instance's connection. Answers come only
    to this instance's own reply topic, and only the door a press went to may answer it."""

    def __init__(self, connection: ServiceConnection, prefix: str) -> None:
        self.topics = Topics(prefix)
        self.connection = connection
        # This instance's name, from its identity (svc/{instance}); a plain test broker: a new one.
        self.instance = instance_of(connection.client_id) or uuid.uuid4().hex[:12]
        self.replies = self.topics.replies_filter(self.instance)
        # A press waiting for its answer: correlation data -> the door it was sent to.
        self._asked: dict[bytes, tuple[str, str]] = {}
        self._answers: dict[bytes, CommandReply] = {}
        self._cond = threading.Condition()
        connection.subscribe(self.replies, self._on_message)

    def _on_message(self, message: mqtt.MQTTMessage) -> None:
        self.connection.ack(message)  # an answer is taken at once: a late one is no use anyway
        self._answer(message.topic, getattr(message.properties, "CorrelationData", None),
                     bytes(message.payload))

    def _answer(self, topic: str, correlation: object, payload: bytes) -> None:
        parsed = self.topics.parse(topic)
        if parsed is None or parsed.kind is not Kind.REPLY or parsed.instance != self.instance:
            return
        if not isinstance(correlation, bytes):
            log.warning("a reply on %s without correlation data: ignored", topic)
            return
        try:
            answer = CommandReply.from_json(payload)
        except WireError as exc:
            log.warning("a reply on %s that is not one: %s", topic, exc)
            return
        with self._cond:
            # Only the door this press went to may answer it, on its own reply topic.
            if self._asked.get(correlation) != (parsed.store, parsed.door):
                log.warning("a reply on %s for a press not sent to that door: ignored", topic)
                return
            self._answers[correlation] = answer
            self._cond.notify_all()

    def send(self, store: str, door: str, command: str,
             timeout: float = ANSWER_SECONDS) -> CommandReply | None:
        """Publish one command (QoS 1) and wait for the door's answer; None when none comes in time."""
        correlation = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho: untyped
        props.ResponseTopic = self.topics.reply(self.instance, store, door)
        props.CorrelationData = correlation
        with self._cond:
            self._asked[correlation] = (store, door)
        try:
            self.connection.publish(self.topics.cmd(store, door), command, properties=props)
            with self._cond:
                self._cond.wait_for(lambda: correlation in self._answers, timeout)
                return self._answers.pop(correlation, None)
        finally:
            with self._cond:
                self._asked.pop(correlation, None)
                self._answers.pop(correlation, None)

    def ask_replay(self, store: str, door: str, request: ReplayRequest) -> None:
        """Ask a door for events again (contract §4 `replay`); its answer comes on the events topic
        and `replay/result`, to the fleet consumer."""
        self.connection.publish(self.topics.replay(store, door), request.to_json())

    def publish_revocation(self, text: str, timeout: float = 10.0) -> None:
        """The signed list, retained: doors connecting later get it too. Raises RuntimeError when the
        broker did not acknowledge it in time."""
        info = self.connection.publish(self.topics.revoked(), text, retain=True)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise RuntimeError(f"the broker did not take the revocation list within {timeout:.0f} s")

    def publish_config(self, store: str, door: str, document: str, timeout: float = 10.0) -> None:
        """A door's signed configuration, retained on its `config` topic (contract §11). Raises
        RuntimeError when the broker did not acknowledge it in time."""
        info = self.connection.publish(self.topics.config(store, door), document, retain=True)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise RuntimeError(f"the broker did not take {store}/{door}'s configuration within "
                               f"{timeout:.0f} s")
