"""CloudSync: the door on the cloud's MQTT broker (contract §4), with paho-mqtt 2 and MQTT 5.

Threads: paho's network thread runs the callbacks, which are all guarded (an
exception there would kill the network thread) and only post work to the
reactor, except two cheap things: shedding commands beyond the intake bound,
and handing a revocation list to its own verifier thread (a big list takes
seconds to decode and check; the reactor must not wait for it).

What goes out:
* retained `status` (Last Will: `{"online": false}`), `seats`, `sessions/{member}`
  (an empty retained message when a session closes), republished on every connect;
* every journaled event, from the outbox in `seq` order, QoS 1, with a window of
  messages in flight; an event is marked delivered on the PUBACK of that very publish.
What comes in: commands (member codes with `act`), the signed revocation list, and
Home Assistant's birth message. Commands are acknowledged to the broker only after
their decision is committed (manual ack), so a crash means redelivery, which the
door's cti memory answers with the first result; the broker sends at most
RECEIVE_MAXIMUM unacknowledged commands at a time, which bounds the door's intake.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller import __version__
from controller.codes import MalformedCode, RevocationList
from controller.config import Config, MqttConfig, MqttCredentials
from controller.core import DoorCore
from controller.decision import RevocationApplied
from controller.journal import Journal, JournaledEvent, JournalError, rfc3339
from controller.reactor import Reactor
from controller.vocab import Deny, Side

log = logging.getLogger("doorctl.cloud")

WINDOW = 200  # events in flight before waiting for PUBACKs
BATCH = 1000  # outbox rows read at a time
MAX_COMMAND_BYTES = 4096  # a member code is at most 512 chars; anything far bigger is not one
# QoS 1 commands the broker may send before we acknowledge one (MQTT 5 Receive Maximum). A broker
# may still send more (QoS 0, or a backlog on reconnect: mosquitto 2.0 sends its queue at once), so
# the door also bounds what waits for the reactor; past the bound a command is answered busy. At most
# MAX_COMMAND_BYTES each, the queue stays under ~4 MB.
RECEIVE_MAXIMUM = 32
MAX_PENDING_COMMANDS = 1000
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
        credentials: MqttCredentials,
        reactor: Reactor,
        core: DoorCore,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        if config.mqtt is None:
            raise ValueError("CloudSync needs an [mqtt] section")
        self.mqtt: MqttConfig = config.mqtt
        self.credentials = credentials
        self.config = config
        self.reactor = reactor
        self.core = core
        self._status = status
        self.topics = Topics(self.mqtt.topic_prefix, config.door.store, config.door.name)
        self.connected = False
        self._published: dict[str, Any] = {}  # topic -> last payload sent (retained state)
        self._queue: deque[JournaledEvent] = deque()  # undelivered events read, not yet sent
        self._last_queued = 0  # highest seq read from the outbox into _queue or sent
        # Every publish in flight, by paho mid: the event's seq, or None for anything else. Guarded by
        # _lock (the network thread acks). A PUBACK whose mid is not here yet arrived before publish()
        # returned: it waits in _early_acks until the publisher claims it, so nothing is left there.
        self._lock = threading.Lock()
        self._inflight: dict[int, int | None] = {}
        self._events_inflight = 0
        self._early_acks: set[int] = set()
        self._acked: list[int] = []
        self._flush_posted = False
        self._pending_commands = 0  # commands posted to the reactor, not yet answered
        self._backoff = BACKOFF_START
        self._revocations = _RevocationWorker(self)
        self.client = self._make_client()

    # --- setup ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        door = self.config.door
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"doorctl-{door.store}-{door.name}",
            protocol=mqtt.MQTTv5,
        )
        # paho logs "not connected" publishes and reconnect failures at ERROR/WARNING; offline is an
        # expected state of a door, said once by this module, so paho only speaks when debugging.
        paho_log = logging.getLogger("doorctl.paho")
        paho_log.setLevel(logging.CRITICAL)
        client.enable_logger(paho_log)
        client.will_set(self.topics.status, json.dumps({"online": False}), qos=1, retain=True)
        if self.credentials.tls is not None:
            client.tls_set_context(self.credentials.tls)
        if self.credentials.username:
            client.username_pw_set(self.credentials.username, self.credentials.password)
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
        self.client.connect_async(
            self.mqtt.host, self.mqtt.port, keepalive=15, clean_start=False, properties=props
        )
        self.client.loop_start()
        self._revocations.start()

    def stop(self) -> None:
        """Say goodbye: status offline (retained), then disconnect."""
        if self.connected:
            info = self.client.publish(self.topics.status, json.dumps({"online": False}), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone meanwhile: the Will says it
                info.wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
        self._revocations.stop()

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
            with self._lock:
                shed = self._pending_commands >= MAX_PENDING_COMMANDS
                if not shed:
                    self._pending_commands += 1
            if shed:
                # Only QoS 0 floods get here (the broker's Receive Maximum bounds QoS 1): answer
                # now, from this thread, rather than queue without bound.
                self._reply({"cti": None, "ok": False, "result": None, "reason": Deny.BUSY}, props)
                client.ack(mid, qos)
                return
            self.reactor.post(lambda: self._command(payload, props, mid, qos))
            return
        if topic == self.topics.revoked:
            self._revocations.offer(payload)
        else:
            self.reactor.post(lambda: self._message(topic, payload))
        client.ack(mid, qos)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
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
        self.reactor.post(self._flush_acks)

    def publishes_waiting(self) -> tuple[int, int]:
        """(publishes awaiting their PUBACK, PUBACKs awaiting their publish): both drain to 0."""
        with self._lock:
            return len(self._inflight), len(self._early_acks)

    def _send(self, topic: str, payload: str | bytes, *, retain: bool = False, seq: int | None = None,
              properties: Properties | None = None) -> None:
        """Every publish goes through here, so every PUBACK finds its publish (events or not)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return  # not queued by paho at all: no PUBACK will come (an event stays undelivered)
        with self._lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                if seq is not None:
                    self._acked.append(seq)
                return
            self._inflight[info.mid] = seq
            if seq is not None:
                self._events_inflight += 1

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
            pending = sorted(seq for seq in self._inflight.values() if seq is not None)
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
        for topic in list(self._published):
            gone = self.topics.session_member(topic)
            if gone is not None and gone not in live and self._published[topic] is not None:
                self._clear(topic)

    def _retain(self, topic: str, body: dict[str, Any], ts: float | None) -> None:
        if self._published.get(topic) == body:
            return
        self._published[topic] = body
        payload = dict(body)
        if ts is not None:
            payload["ts"] = rfc3339(ts)
        self._send(topic, json.dumps(payload, ensure_ascii=False), retain=True)

    def _clear(self, topic: str) -> None:
        self._published[topic] = None
        self._send(topic, b"", retain=True)

    # --- the outbox ----------------------------------------------------------------------

    def drain(self) -> None:
        """Send undelivered events in seq order, keeping at most WINDOW in flight."""
        if not self.connected:
            return
        store, door = self.config.door.store, self.config.door.name
        while True:
            with self._lock:
                room = WINDOW - self._events_inflight
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
                self._send(self.topics.events, body, seq=event.seq)

    def _flush_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
            self._flush_posted = False
        if acked:
            self.core.journal.mark_delivered(acked, at=self.core.clock.now())
        self.drain()

    # --- incoming ------------------------------------------------------------------------

    def _message(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.ha_status:
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

    def _command(self, payload: bytes, props: Any, mid: int, qos: int) -> None:
        with self._lock:
            self._pending_commands -= 1
        if not self.connected:
            # Not acknowledged: the broker sends it again when we are back, and its ttl decides then.
            return
        try:
            text = payload.decode("utf-8").strip() if len(payload) <= MAX_COMMAND_BYTES else None
        except UnicodeDecodeError:
            text = None
        reply: dict[str, Any] = {"cti": None, "ok": False, "result": None, "reason": Deny.MALFORMED}
        if text is not None:
            handled = self.core.present(text, "remote", Side.REMOTE)
            decision = handled.decision
            if decision is not None:
                reply = {
                    "cti": handled.code.cti.hex() if handled.code else None,
                    "ok": decision.ok,
                    "result": decision.result,
                    "reason": decision.reason,
                }
        self._reply(reply, props)
        # After the decision is committed and answered: a crash before this means redelivery.
        self.client.ack(mid, qos)

    def _reply(self, reply: dict[str, Any], props: Any) -> None:
        topic = getattr(props, "ResponseTopic", None) if props is not None else None
        out_props = None
        if topic:
            correlation = getattr(props, "CorrelationData", None)
            if correlation is not None:
                out_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho
                out_props.CorrelationData = correlation
        self._send(topic or self.topics.cmd_result, json.dumps(reply), properties=out_props)

    def _apply_revocation(self, listing: RevocationList) -> None:
        """Reactor thread: a verified list the revocation thread has stored: codes see it from now."""
        self.core.revocation_stored(listing.version, listing.members)
        self.core.handle(RevocationApplied(listing.version, len(listing.members)))
        log.info("revocation list version %d applied: %d members", listing.version, len(listing.members))

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
            self._send(topic, json.dumps(config), retain=True)



class _RevocationWorker:
    """Verifies revocation lists off the reactor: newest offer wins, one at a time."""

    def __init__(self, cloud: CloudSync) -> None:
        self._cloud = cloud
        self._cond = threading.Condition()
        self._offer: bytes | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="revocation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def offer(self, payload: bytes) -> None:
        with self._cond:
            self._offer = payload
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._offer is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                payload, self._offer = self._offer, None
            if payload is None:
                continue
            try:
                self._check(payload)
            except Exception:
                log.exception("revocation list check failed")

    def _check(self, payload: bytes) -> None:
        cloud = self._cloud
        if not payload:
            return  # the retained list was cleared: keep the last one we had
        limit = cloud.config.credentials.max_revoked_members
        try:
            listing = cloud.core.verifier.verify_revocation(payload.decode("ascii"), limit)
        except UnicodeDecodeError:
            log.warning("ignoring a revocation list that is not ASCII text")
            return
        except MalformedCode as exc:
            log.warning("ignoring a revocation list: %s", exc)
            return
        current = cloud.core.revocation_version
        if current is not None and listing.version <= current:
            log.info("revocation list version %d is not newer than ours (%d); ignored", listing.version,
                     current)
            return
        try:
            stored = Journal.store_revocation(cloud.core.journal.path, listing.version, listing.members)
        except JournalError as exc:
            log.error("%s", exc)
            return
        if stored:
            cloud.reactor.post(lambda: cloud._apply_revocation(listing))
