"""A local mosquitto on a free port, that can be stopped and restarted (a network cut), and an
MQTT 5 client that records what the door publishes: for the demo, the tests and the benchmarks.
Never the machine's shared broker on 1883."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A plain loopback broker (door-only tests and benches), or, given `conf`, the broker that
    configuration describes (the closed one `officepass broker-config` writes), answering on `port`."""

    def __init__(self, tmp: Path, port: int | None = None, extra_conf: str = "",
                 conf: Path | None = None) -> None:
        self.port = port or free_port()
        self.log = tmp / f"mosquitto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if conf is not None:
            self.conf = conf
            self.start()
            return
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        store = tmp / f"mosquitto-{self.port}-data"
        store.mkdir(exist_ok=True)
        # Persistent, as a cloud broker is: sessions and retained messages survive a restart.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {store}/\n"
            f"max_queued_messages 200000\nset_tcp_nodelay true\n"
            # As root, mosquitto would switch to its own user and lose access to our temp files.
            f"{'user root' if os.geteuid() == 0 else ''}\n{extra_conf}"
        )
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Recorder:
    """Subscribes to everything and keeps what arrives."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "test-recorder",
                 tls: ssl.SSLContext | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.arrived: list[float] = []  # time.time() of each message, for latency figures
        self.cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        if tls is not None:
            self.client.tls_set_context(tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        # A persistent session: what is published while this client is away waits at the broker.
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.arrived.append(time.time())
            self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float = 15) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def on(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic) if p]

    def events(self, topic: str) -> list[dict[str, Any]]:
        return self.json_on(topic)

    def publish(self, topic: str, payload: bytes | str, response_topic: str | None = None,
                correlation: bytes | None = None, retain: bool = False) -> None:
        props = None
        if response_topic:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        self.client.publish(topic, payload, qos=1, retain=retain, properties=props).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
