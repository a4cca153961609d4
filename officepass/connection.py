"""One service instance, one broker connection, one identity (contract §4, §8).

The broker binds a client id to its identity, so an instance has exactly one connection: the fleet
consumer and the door link both ride on it. `ServiceConnection` owns the paho client (identity, TLS,
a persistent session the broker keeps while the service restarts, MQTT 5 Receive Maximum); parts
subscribe with a handler, and each message goes to the handler of the filter it matches, on paho's
network thread. Handlers acknowledge what they took (manual acks): the consumer once it is stored,
the link at once.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wire.credentials import MqttCredentials

log = logging.getLogger("officepass.connection")

# The broker keeps this instance's subscriptions and queues its QoS 1 messages while it is away (a
# restart of the service or of the broker): events published meanwhile still arrive.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
# Unacknowledged messages the broker may send at once. Asked, not relied on: mosquitto 2.0.11 keeps
# to it only until the first acknowledgements (measured; see officepass.consumer).
RECEIVE_MAXIMUM = 1000
Handler = Callable[[mqtt.MQTTMessage], None]
ROUTES_KEPT = 50_000


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    # A press waits for its answer: send at once, not after Nagle's wait for the previous ack
    # (measured: 44 ms p50 press-to-answer with it, 4.6 ms without).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ServiceConnection:
    def __init__(self, host: str, port: int, credentials: MqttCredentials | None = None,
                 client_id: str | None = None) -> None:
        credentials = credentials or MqttCredentials(None, None, None)
        # With an identity, the broker makes the client id its username; without one (a plain test
        # broker) a stable id of the caller's, or a new one.
        self.client_id = credentials.username or client_id or f"officepass-{uuid.uuid4().hex[:12]}"
        self._host, self._port = host, port
        self._subscriptions: list[tuple[str, int, Handler]] = []
        self._routes: dict[str, Handler | None] = {}  # topic -> its handler (paho's thread only)
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=mqtt.MQTTv5)
        credentials.apply(self.client)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_socket_open = _no_delay
        self._started = False

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Before `start`: what to subscribe to on every connect, and who takes its messages."""
        with self._lock:
            self._subscriptions.append((topic_filter, qos, handler))
            self._routes = {}

    def start(self, timeout: float = 10.0) -> bool:
        """Connect (in the background, retrying); True once subscribed within `timeout`."""
        if not self._started:
            self._started = True
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
            props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            self.client.reconnect_delay_set(1, 10)
            self.client.connect_async(self._host, self._port, clean_start=False, properties=props)
            self.client.loop_start()
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False,
                properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)

    def ack(self, message: mqtt.MQTTMessage) -> None:
        self.client.ack(message.mid, message.qos)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the service (%s): check [mqtt] username and password_file",
                      self._host, self._port, reason)
            return
        self.connected.set()
        with self._lock:
            wanted = [(f, q) for f, q, _ in self._subscriptions]
        if wanted:
            client.subscribe(wanted)
        else:
            self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            handler = self._handler(message.topic)
            if handler is None:
                self.ack(message)  # nobody's: taken, so the broker does not send it again
                return
            handler(message)
        except Exception:  # a callback that raises would end paho's network thread
            log.exception("a message on %s could not be handled", message.topic)

    def _handler(self, topic: str) -> Handler | None:
        # A fleet has a bounded set of topics and each comes again and again: matched once each.
        if topic in self._routes:
            return self._routes[topic]
        with self._lock:
            subscriptions = list(self._subscriptions)
        found: Handler | None = None
        for topic_filter, _qos, handler in subscriptions:
            plain = topic_filter.split("/", 2)[2] if topic_filter.startswith("$share/") else topic_filter
            if mqtt.topic_matches_sub(plain, topic):
                found = handler
                break
        if len(self._routes) >= ROUTES_KEPT:  # members' session topics come and go: start afresh
            self._routes.clear()
        self._routes[topic] = found
        return found
