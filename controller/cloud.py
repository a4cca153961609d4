"""CloudSync: the door on the cloud's MQTT broker (contract §4), with paho-mqtt 2 and MQTT 5.

Threads: paho's network thread runs the callbacks, which are all guarded (an
exception there would kill the network thread) and only post work to the
reactor. Everything that reads or writes the door's state (the journal, the
core) happens on the reactor thread.

What goes out:
* retained `status` (Last Will: `{"online": false}`), `seats`, `sessions/{member}`
  (an empty retained message when a session closes), republished on every connect;
* every journaled event, from the outbox in `seq` order, QoS 1, with a window of
  messages in flight; an event is marked delivered when its PUBACK arrives.
What comes in: commands (member codes with `act`), the revocation list, and
Home Assistant's birth message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller import __version__
from controller.config import Config, MqttConfig
from controller.core import DoorCore, Handled
from controller.journal import JournaledEvent, rfc3339
from controller.reactor import Reactor

log = logging.getLogger("doorctl.cloud")

WINDOW = 200  # events in flight before waiting for PUBACKs
BATCH = 1000  # outbox rows read at a time
MAX_COMMAND_BYTES = 4096  # a member code is at most 512 chars; anything far bigger is not one
BACKOFF_START, BACKOFF_CAP = 1.0, 30.0
SESSION_EXPIRY_SECONDS = 3600  # the broker keeps our subscriptions (and queued commands) this long


class Topics:
    """Every topic the door uses, spelled once."""

    def __init__(self, prefix: str, store: str, door: str) -> None:
        base = f"{prefix}/stores/{store}"
        self.status = f"{base}/doors/{door}/status"
        self.seats = f"{base}/seats"
        self.sessions = f"{base}/sessions/+"
        self.events = f"{base}/doors/{door}/events"
        self.cmd = f"{base}/doors/{door}/cmd"
        self.cmd_result = f"{base}/doors/{door}/cmd/result"
        self.revoked = f"{prefix}/revoked"
        self.ha_status = "homeassistant/status"
        self._session_prefix = f"{base}/sessions/"

    def session(self, member: str) -> str:
        return self._session_prefix + member

    def session_member(self, topic: str) -> str | None:
        return topic[len(self._session_prefix) :] if topic.startswith(self._session_prefix) else None


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """paho callbacks must never raise: it would end the network thread."""

    def wrapper(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("MQTT callback %s failed", fn.__name__)

    return wrapper


class CloudSync:
    def __init__(
        self,
        config: Config,
        reactor: Reactor,
        core: DoorCore,
        status: Callable[[], dict[str, Any]],
        on_unlock: Callable[[], None],
    ) -> None:
        assert config.mqtt is not None
        self.mqtt: MqttConfig = config.mqtt
        self.config = config
        self.reactor = reactor
        self.core = core
        self._status = status
        self._on_unlock = on_unlock
        self.topics = Topics(self.mqtt.topic_prefix, config.door.store, config.door.name)
        self.connected = False
        self._published: dict[str, Any] = {}  # topic -> last payload sent (retained state)
        self._queue: deque[JournaledEvent] = deque()  # undelivered events read, not yet sent
        self._last_queued = 0  # highest seq read from the outbox into _queue or sent
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._lock = threading.Lock()  # guards _inflight, _early_acks, _acked (network thread)
        self._early_acks: set[int] = set()
        self._acked: list[int] = []
        self._flush_posted = False
        self._backoff = BACKOFF_START
        self.client = self._make_client()

    # --- setup ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        door = self.config.door
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"doorctl-{door.store}-{door.name}",
            protocol=mqtt.MQTTv5,
        )
        client.enable_logger(logging.getLogger("doorctl.paho"))
        client.will_set(self.topics.status, json.dumps({"online": False}), qos=1, retain=True)
        if self.mqtt.tls:
            client.tls_set(
                ca_certs=self.mqtt.ca_file,
                certfile=self.mqtt.cert_file,
                keyfile=self.mqtt.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.mqtt.username:
            password = None
            if self.mqtt.password_file:
                password = Path(self.mqtt.password_file).read_text().strip()
            client.username_pw_set(self.mqtt.username, password)
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
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        self.client.connect_async(
            self.mqtt.host, self.mqtt.port, keepalive=15, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Say goodbye: status offline (retained), then disconnect."""
        if self.connected:
            info = self.client.publish(self.topics.status, json.dumps({"online": False}), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone meanwhile: the Will says it
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()

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
        self.reactor.post(lambda: self._message(topic, payload, props))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early_acks.add(mid)  # PUBACK before publish() returned its mid
                return
            self._acked.append(seq)
            if self._flush_posted:
                return
            self._flush_posted = True
        self.reactor.post(self._flush_acks)

    # --- reactor side --------------------------------------------------------------------

    def _connected(self) -> None:
        self.connected = True
        log.info("connected to broker %s:%d", self.mqtt.host, self.mqtt.port)
        for topic in (self.topics.cmd, self.topics.revoked, self.topics.sessions):
            self.client.subscribe(topic, qos=1)
        if self.mqtt.home_assistant:
            self.client.subscribe(self.topics.ha_status, qos=1)
            self._publish_discovery()
        self._published.clear()  # the broker may have lost retained state: send it all again
        self.state_changed()
        # Events handed to paho before the outage are resent by paho itself; continue after them.
        with self._lock:
            pending = sorted(self._inflight.values())
        self._queue.clear()
        self._last_queued = pending[-1] if pending else 0
        self.drain()

    def _disconnected(self, reason: str) -> None:
        if self.connected:
            log.warning("lost the broker: %s; the door goes on offline", reason)
        self.connected = False

    def state_changed(self) -> None:
        """Publish retained status, seats and sessions that differ from what was last sent."""
        if not self.connected:
            return
        now = self.core.clock.now()
        status = {"online": True, **self._status(), "version": __version__}
        self._retain(self.topics.status, status, now)
        self._retain(self.topics.seats, self.core.seats(), now)
        live = self.core.state.sessions
        for member, session in live.items():
            self._retain(self.topics.session(member), {
                "member": member,
                "state": session.state,
                "checked_in_at": rfc3339(session.checked_in_at),
                "deadline": rfc3339(session.deadline),
                "overdue": session.overdue,
            }, None)
        for topic in [t for t in self._published if self.topics.session_member(t) is not None]:
            member = self.topics.session_member(topic)
            if member not in live and self._published[topic] is not None:
                self._clear(topic)

    def _retain(self, topic: str, body: dict[str, Any], ts: float | None) -> None:
        if self._published.get(topic) == body:
            return
        self._published[topic] = body
        payload = dict(body)
        if ts is not None:
            payload["ts"] = rfc3339(ts)
        self.client.publish(topic, json.dumps(payload, ensure_ascii=False), qos=1, retain=True)

    def _clear(self, topic: str) -> None:
        self._published[topic] = None
        self.client.publish(topic, b"", qos=1, retain=True)

    # --- the outbox ----------------------------------------------------------------------

    def drain(self) -> None:
        """Send undelivered events in seq order, keeping at most WINDOW in flight."""
        if not self.connected:
            return
        store, door = self.config.door.store, self.config.door.name
        while True:
            with self._lock:
                room = WINDOW - len(self._inflight)
            if room <= 0:
                return
            if not self._queue:
                batch = self.core.journal.undelivered(after_seq=self._last_queued, limit=BATCH)
                if not batch:
                    return
                self._queue.extend(batch)
                self._last_queued = batch[-1].seq
            for _ in range(min(room, len(self._queue))):
                event = self._queue.popleft()
                body = json.dumps(event.payload(store, door), ensure_ascii=False)
                # If the broker went away mid-drain, paho holds this message and resends it on
                # reconnect; it stays in _inflight until its PUBACK comes.
                info = self.client.publish(self.topics.events, body, qos=1)
                with self._lock:
                    if info.mid in self._early_acks:
                        self._early_acks.discard(info.mid)
                        self._acked.append(event.seq)
                    else:
                        self._inflight[info.mid] = event.seq

    def _flush_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
            self._flush_posted = False
        if acked:
            self.core.journal.mark_delivered(acked, at=self.core.clock.now())
        self.drain()

    # --- incoming ------------------------------------------------------------------------

    def _message(self, topic: str, payload: bytes, props: Any) -> None:
        if topic == self.topics.cmd:
            self._command(payload, props)
        elif topic == self.topics.revoked:
            self._revocation(payload)
        elif topic == self.topics.ha_status:
            if payload.strip().lower() == b"online":
                self._publish_discovery()
                self._published.clear()
                self.state_changed()
        elif (member := self.topics.session_member(topic)) is not None:
            self._retained_session_seen(topic, member, payload)

    def _retained_session_seen(self, topic: str, member: str, payload: bytes) -> None:
        """A retained session from before (we may have been offline when it closed): clear it."""
        if payload and member not in self.core.state.sessions:
            self._clear(topic)

    def _command(self, payload: bytes, props: Any) -> None:
        if not self.connected:
            return
        if len(payload) > MAX_COMMAND_BYTES:
            handled: Handled | None = None
            text = None
        else:
            try:
                text = payload.decode("utf-8").strip()
            except UnicodeDecodeError:
                text = None
            handled = self.core.present(text, "remote", "remote") if text is not None else None
        if handled is None or handled.ignored or handled.decision is None:
            reply: dict[str, Any] = {"cti": None, "ok": False, "result": None, "reason": "malformed"}
        else:
            decision = handled.decision
            reply = {
                "cti": handled.code.cti.hex() if handled.code else None,
                "ok": decision.ok,
                "result": decision.result,
                "reason": decision.reason,
            }
            if decision.unlock and not handled.redelivery:
                self._on_unlock()
        self._reply(reply, props)
        self.state_changed()

    def _reply(self, reply: dict[str, Any], props: Any) -> None:
        topic = getattr(props, "ResponseTopic", None) if props is not None else None
        out_props = None
        if topic:
            correlation = getattr(props, "CorrelationData", None)
            if correlation is not None:
                out_props = Properties(PacketTypes.PUBLISH)
                out_props.CorrelationData = correlation
        self.client.publish(topic or self.topics.cmd_result, json.dumps(reply), qos=1, properties=out_props)

    def _revocation(self, payload: bytes) -> None:
        if not payload:
            return  # the retained list was cleared: keep the last one we had
        try:
            body = json.loads(payload)
            version, members = body["version"], body["members"]
            if isinstance(version, bool) or not isinstance(version, int):
                raise ValueError("version is not an integer")
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise ValueError("members is not a list of member ids")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a malformed revocation list: %s", exc)
            return
        if self.core.set_revoked(version, members):
            log.info("revocation list version %d applied: %d members", version, len(members))
        else:
            log.info("revocation list version %d is older than ours; ignored", version)

    # --- Home Assistant ------------------------------------------------------------------

    def _publish_discovery(self) -> None:
        door = self.config.door
        node = f"doorctl_{door.store}_{door.name}".replace("-", "_").replace(".", "_")
        device = {"identifiers": [node], "name": f"Door {door.store} {door.name}", "manufacturer": "doorctl",
                  "sw_version": __version__}
        availability = {"topic": self.topics.status,
                        "value_template": "{{ 'online' if value_json.online else 'offline' }}"}
        entities = {
            f"homeassistant/binary_sensor/{node}/lock/config": {
                "name": "Lock", "device_class": "lock", "state_topic": self.topics.status,
                # binary_sensor 'lock': ON means unlocked. State only: nothing here can unlock the door.
                "value_template": "{{ 'OFF' if value_json.lock == 'locked' else 'ON' }}",
            },
            f"homeassistant/binary_sensor/{node}/door/config": {
                "name": "Door", "device_class": "door", "state_topic": self.topics.status,
                "value_template": "{{ 'ON' if value_json.door == 'open' else 'OFF' }}",
            },
            f"homeassistant/sensor/{node}/seats/config": {
                "name": "Free seats", "state_topic": self.topics.seats, "unit_of_measurement": "seats",
                "value_template": "{{ value_json.available }}", "icon": "mdi:seat",
            },
        }
        for topic, entity in entities.items():
            object_id = topic.split("/")[-2]
            config = {**entity, "unique_id": f"{node}_{object_id}", "device": device,
                      "availability": [availability]}
            self.client.publish(topic, json.dumps(config), qos=1, retain=True)

