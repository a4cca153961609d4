"""CloudSync: the door on the cloud's MQTT broker (contract §4), with paho-mqtt 2 and MQTT 5.

This module is the transport: the client, its identity and TLS, connect and backoff, the retained
mirror (status with its Last Will, seats, sessions), and the dispatch of what comes in. The other
jobs have modules of their own, composed here:

* `controller.outbox.OutboxLedger`: every journaled event, in `seq` order, until its PUBACK;
* `controller.commands.CommandIntake`: app commands, bounded, decided, answered, acknowledged;
* `controller.revocation.RevocationWorker`: signed revocation lists, verified off the reactor;
* `controller.discovery`: Home Assistant's discovery messages.

The door is reached through one port (`controller.door_port.DoorPort`), on the reactor thread only.
paho's network thread runs the callbacks, which are all guarded (an exception there would kill the
network thread) and only post work to the reactor, except two cheap things: shedding commands beyond
the intake bound, and handing a revocation list to its own thread.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.commands import RECEIVE_MAXIMUM, CommandIntake
from controller.config import Config, MqttConfig
from controller.discovery import discovery_messages
from controller.door_port import DoorPort
from controller.journal import JournaledEvent
from controller.outbox import WINDOW, OutboxLedger
from controller.reactor import Reactor
from controller.replay import ReplayServer
from controller.revocation import RevocationWorker
from wire.codes import RevocationList
from wire.credentials import MqttCredentials
from wire.payloads import CLEARED, CommandReply, DoorOffline, ReplayRequest, ReplayResult, WireError
from wire.topics import DoorTopics

log = logging.getLogger("doorctl.cloud")

BACKOFF_START, BACKOFF_CAP = 1.0, 30.0
SESSION_EXPIRY_SECONDS = 3600  # the broker keeps our subscriptions (and queued commands) this long
# The broker sends nothing bigger (MQTT 5 Maximum Packet Size): the largest message the door takes is
# the revocation list of its configured size; anything larger never reaches the door's memory.
PACKET_OVERHEAD = 4096


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """paho callbacks must never raise: it would end the network thread."""

    def wrapper(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("MQTT callback %s failed", fn.__name__)

    return wrapper


class CloudSync:
    def __init__(self, config: Config, credentials: MqttCredentials, reactor: Reactor,
                 port: DoorPort) -> None:
        if config.mqtt is None:
            raise ValueError("CloudSync needs an [mqtt] section")
        self.mqtt: MqttConfig = config.mqtt
        self.credentials = credentials
        self.reactor = reactor
        self.port = port
        self.topics = DoorTopics(self.mqtt.topic_prefix, port.store, port.door)
        self.connected = False
        self._published: dict[str, object] = {}  # topic -> last payload sent (retained state)
        self._backoff = BACKOFF_START
        self.client = self._make_client(config)
        self.outbox = OutboxLedger(port.undelivered, self._send_event, port.delivered, reactor.post)
        self.commands = CommandIntake(self.topics, port, reactor.post, self._send_reply, self.client.ack,
                                      lambda: self.connected)
        self.revocations = RevocationWorker(port.verify_revocation, port.max_revoked_members,
                                            self._verified_revocation)
        self.replays = ReplayServer(port.epoch, port.events_between, self._send_replayed,
                                    self._send_replay_result, reactor.post)

    # --- setup ---------------------------------------------------------------------------

    def _make_client(self, config: Config) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            # With an identity the broker makes the client id its username (contract §4); without one
            # (a plain test broker) this is the id.
            client_id=self.credentials.username or f"doorctl-{self.port.store}-{self.port.door}",
            protocol=mqtt.MQTTv5,
        )
        # paho logs "not connected" publishes and reconnect failures at ERROR/WARNING; offline is an
        # expected state of a door, said once by this module, so paho only speaks when debugging.
        paho_log = logging.getLogger("doorctl.paho")
        paho_log.setLevel(logging.CRITICAL)
        client.enable_logger(paho_log)
        client.will_set(self.topics.status, DoorOffline().to_json(), qos=1, retain=True)
        self.credentials.apply(client)
        client.manual_ack_set(True)
        client.max_inflight_messages_set(WINDOW)
        client.reconnect_delay_set(int(BACKOFF_START), int(BACKOFF_START))
        client.on_connect = _guarded(self._on_connect)
        client.on_disconnect = _guarded(self._on_disconnect)
        client.on_message = _guarded(self._on_message)
        client.on_publish = _guarded(self._on_publish)
        client.on_socket_open = _guarded(self._on_socket_open)
        return client

    @staticmethod
    def _on_socket_open(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Small messages, sent as they happen: without this, Nagle's algorithm holds a status
        # update back until the previous packet is acknowledged (tens of ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        props.MaximumPacketSize = self.revocations.max_bytes + PACKET_OVERHEAD
        self.client.connect_async(
            self.mqtt.host, self.mqtt.port, keepalive=15, clean_start=False, properties=props
        )
        self.client.loop_start()
        self.revocations.start()

    def stop(self) -> None:
        """Say goodbye: status offline (retained), then disconnect."""
        if self.connected:
            info = self.client.publish(self.topics.status, DoorOffline().to_json(), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone meanwhile: the Will says it
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
        self.revocations.stop()

    # --- paho callbacks (network thread): post only -------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.mqtt.host, self.mqtt.port, reason)
            self._set_backoff(grow=True)
            return
        self._set_backoff(grow=False)
        self.reactor.post(self._connected)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._set_backoff(grow=True)
        self.reactor.post(lambda: self._disconnected(str(reason)))

    def _set_backoff(self, *, grow: bool) -> None:
        # Exponential, capped at 30 s, jittered so a fleet of doors does not reconnect in step.
        self._backoff = min(self._backoff * 2, BACKOFF_CAP) if grow else BACKOFF_START
        delay = max(1, round(self._backoff * random.uniform(0.5, 1.0)))
        self.client.reconnect_delay_set(delay, delay)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic, payload, props = message.topic, bytes(message.payload), message.properties
        mid, qos = message.mid, message.qos
        if topic == self.topics.cmd:
            self.commands.received(payload, props, mid, qos)
            return
        if topic == self.topics.revoked:
            self.revocations.offer(payload)
        else:
            self.reactor.post(lambda: self._message(topic, payload))
        client.ack(mid, qos)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.outbox.acked(mid)

    def publishes_waiting(self) -> tuple[int, int]:
        """(publishes awaiting their PUBACK, PUBACKs awaiting their publish): both drain to 0."""
        return self.outbox.waiting()

    def _publish(self, topic: str, payload: str | bytes, *, retain: bool = False,
                 properties: Properties | None = None) -> int | None:
        """Every publish goes through here; the paho mid, or None when paho did not queue it."""
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return None
        return info.mid

    def _send(self, topic: str, payload: str | bytes, *, retain: bool = False,
              properties: Properties | None = None) -> None:
        self.outbox.track(self._publish(topic, payload, retain=retain, properties=properties))

    def _send_event(self, event: JournaledEvent) -> int | None:
        return self._publish(self.topics.events, self.port.event(event).to_json())

    def _send_replayed(self, event: JournaledEvent) -> None:
        """An event asked for again: the same event (same id) on the events topic (contract §4)."""
        self._send(self.topics.events, self.port.event(event).to_json())

    def _send_replay_result(self, result: ReplayResult) -> None:
        self._send(self.topics.replay_result, result.to_json())

    def _send_reply(self, topic: str, reply: CommandReply, correlation: Any) -> None:
        out_props = None
        if correlation is not None:
            out_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho
            out_props.CorrelationData = correlation
        self._send(topic, reply.to_json(), properties=out_props)

    # --- reactor side --------------------------------------------------------------------

    def _connected(self) -> None:
        self.connected = True
        log.info("connected to broker %s:%d", self.mqtt.host, self.mqtt.port)
        for topic in (self.topics.cmd, self.topics.revoked, self.topics.sessions, self.topics.replay,
                      self.topics.config):
            self.client.subscribe(topic, qos=1)
        if self.mqtt.home_assistant:
            self.client.subscribe(self.topics.ha_status, qos=1)
            self._publish_discovery()
        self._published.clear()  # the broker may have lost retained state: send it all again
        self.state_changed()
        self.outbox.resume()

    def _disconnected(self, reason: str) -> None:
        if self.connected:
            log.warning("lost the broker: %s; the door goes on offline", reason)
        self.connected = False
        self.outbox.pause()

    def written(self, events: list[JournaledEvent]) -> None:
        """The door journaled these events: to the broker."""
        self.outbox.written(events)

    def state_changed(self) -> None:
        """Publish retained status, seats and sessions that differ from what was last sent."""
        if not self.connected:
            return
        status = self.port.status()
        # The time stamp alone changing is no change: compare the rest.
        self._retain(self.topics.status, status.to_dict() | {"ts": None}, status.to_json())
        seats = self.port.seats()
        self._retain(self.topics.seats, seats.to_dict() | {"ts": None}, seats.to_json())
        live = self.port.sessions()
        for member, session in live.items():
            self._retain(self.topics.session(member), session, session.to_json())
        for topic in list(self._published):
            gone = self.topics.session_member(topic)
            if gone is not None and gone not in live and self._published[topic] is not None:
                self._clear(topic)

    def _retain(self, topic: str, compared: object, payload: str) -> None:
        if self._published.get(topic) == compared:
            return
        self._published[topic] = compared
        self._send(topic, payload, retain=True)

    def _clear(self, topic: str) -> None:
        self._published[topic] = None
        self._send(topic, CLEARED, retain=True)

    # --- incoming ------------------------------------------------------------------------

    def _message(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.config:
            self.port.configuration(payload)
            self.state_changed()  # a refusal shows in the status at once
        elif topic == self.topics.replay:
            try:
                self.replays.asked(ReplayRequest.from_json(payload))
            except WireError as exc:
                log.warning("ignored a replay request: %s", exc)
        elif topic == self.topics.ha_status:
            if payload.strip().lower() == b"online":
                self._publish_discovery()
                self._published.clear()
                self.state_changed()
        elif (member := self.topics.session_member(topic)) is not None:
            self._retained_session_seen(topic, member, payload)

    def _retained_session_seen(self, topic: str, member: str, payload: bytes) -> None:
        """A retained session from before (we may have been offline when it closed): clear it."""
        if payload and member not in self.port.sessions():
            self._clear(topic)

    def _verified_revocation(self, listing: RevocationList) -> None:
        """Revocation thread: a verified list, to the reactor (which alone writes the journal)."""
        self.reactor.post(lambda: self.port.revocation(listing))

    def _publish_discovery(self) -> None:
        for topic, payload in discovery_messages(self.topics):
            self._send(topic, payload, retain=True)
