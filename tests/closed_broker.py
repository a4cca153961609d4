"""The broker as a deployment runs it (contract §4): `officepass ca init` and `officepass
broker-config`'s own functions write the configuration, and a real mosquitto runs on it (TLS, no
anonymous client, identities bound to client ids, the ACL). Doors and the service connect with their
identities; the tests' attackers and recorders with theirs."""

from __future__ import annotations

import signal
import ssl
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hwsim.broker import Broker, Recorder, free_port
from officepass.broker_config import BrokerPlan, secret_path, write_broker_config
from officepass.ca import CA_CERT, init_ca
from officepass.service import BrokerAccess
from wire.acl import Identity, door_identity, door_username, observer_identity, service_identity
from wire.credentials import load_credentials
from wire.topics import Topics

TOPICS = Topics()
WATCHER = "observer/watcher"  # the tests' read-only recorder


def identities_for(stores: dict[str, list[str]], instances: tuple[str, ...] = ("a",),
                   observers: tuple[str, ...] = ("watcher",)) -> list[Identity]:
    """As `fleet_identities` makes them from the service's stores: the first door is the controller."""
    found = [service_identity(TOPICS, i) for i in instances]
    for store, doors in stores.items():
        found += [door_identity(TOPICS, store, d, controller=n == 0) for n, d in enumerate(doors)]
    return found + [observer_identity(TOPICS, o) for o in observers]


class ClosedBroker:
    def __init__(self, tmp: Path, identities: list[Identity]) -> None:
        self.tmp = tmp
        self.ca_dir = tmp / "ca"
        init_ca(self.ca_dir, [])
        self.out = tmp / "broker"
        self.port = free_port()
        self.identities = identities
        write_broker_config(BrokerPlan("127.0.0.1", self.port, None, self.ca_dir, identities), self.out)
        self.broker = Broker(tmp, port=self.port, conf=self.out / "mosquitto.conf")

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / CA_CERT

    def password_file(self, username: str) -> Path:
        return secret_path(self.out, username)

    def password(self, username: str) -> str:
        return self.password_file(username).read_text().strip()

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def door_mqtt(self, store: str, door: str) -> dict[str, Any]:
        """The [mqtt] section of that door's configuration."""
        username = door_username(store, door)
        return {"host": "127.0.0.1", "port": self.port, "tls": True, "ca_file": str(self.ca_file),
                "username": username, "password_file": str(self.password_file(username))}

    def service_access(self, instance: str = "a") -> BrokerAccess:
        username = f"svc/{instance}"
        credentials = load_credentials(tls=True, ca_file=str(self.ca_file), cert_file=None, key_file=None,
                                       username=username, password_file=str(self.password_file(username)))
        return BrokerAccess("127.0.0.1", self.port, credentials)

    def recorder(self, topic: str = "#", username: str = WATCHER) -> Recorder:
        return Recorder(self.port, topic=topic, client_id=username, tls=self.tls(), username=username,
                        password=self.password(username))

    def client(self, username: str | None, *, client_id: str = "intruder", password: str | None = None
               ) -> tuple[mqtt.Client, list[Any]]:
        """A connected MQTT 5 client (or one the broker refused: see `connected`), and the reason codes
        of its PUBACKs as they come."""
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.tls_set_context(self.tls())
        if username is not None:
            client.username_pw_set(username, password if password is not None else self.password(username))
        acks: list[Any] = []
        client.on_publish = lambda c, u, mid, reason, props: acks.append(reason)
        client.connect_async("127.0.0.1", self.port)
        client.loop_start()
        end = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < end:
            time.sleep(0.02)
        return client, acks

    def regenerate(self, identities: list[Identity]) -> None:
        """After a door is added: the same command again, and a SIGHUP; nobody is dropped."""
        self.identities = identities
        write_broker_config(BrokerPlan("127.0.0.1", self.port, None, self.ca_dir, identities), self.out)
        assert self.broker.proc is not None
        self.broker.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.broker.stop()
