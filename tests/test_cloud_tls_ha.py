"""TLS with client certificates against a real mosquitto, and Home Assistant discovery."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from hwsim.broker import Broker, Recorder, free_port
from tests.helpers import config_doc, toml_text
from tests.procs import BoardProcess, DoorProcess

STATUS = "officepass/v1/stores/shinjuku-3/doors/main/status"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


Issuer = tuple[x509.Name, ec.EllipticCurvePrivateKey]


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: Issuer | None, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer if issuer else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pki(tmp: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", ca_key, None, ca=True)
    ca_issuer = (ca.subject, ca_key)
    for name, server in (("server", True), ("door", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"{name}.test", key, ca_issuer, server=server)
        files[f"{name}_cert"] = tmp / f"{name}.pem"
        files[f"{name}_key"] = tmp / f"{name}.key"
        files[f"{name}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}_key"].write_bytes(_key_pem(key))
    files["ca"] = tmp / "ca.pem"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


def _door_config(tmp: Path, mqtt_section: dict[str, object]) -> Path:
    doc = config_doc(mqtt=mqtt_section)
    doc["storage"] = {"path": str(tmp / "doorctl.db")}
    path = tmp / "door.toml"
    path.write_text(toml_text(doc))
    return path


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    tls_port = free_port()
    broker = Broker(tmp_path, extra_conf=(
        f"listener {tls_port} 127.0.0.1\ncafile {pki['ca']}\ncertfile {pki['server_cert']}\n"
        f"keyfile {pki['server_key']}\nrequire_certificate true\n"))
    cloud = Recorder(broker.port)  # the cloud side listens on the plain loopback listener
    config = _door_config(tmp_path, {"host": "localhost", "port": tls_port, "tls": True,
                                     "ca_file": str(pki["ca"]), "cert_file": str(pki["door_cert"]),
                                     "key_file": str(pki["door_key"])})
    board = BoardProcess(config, tmp_path / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        assert cloud.wait(lambda: any(json.loads(p).get("online") for p in cloud.on(STATUS) if p), 20), \
            door.output()
        # A client without a certificate is refused by the same listener: the handshake fails,
        # or at the latest the connection never comes up.
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="no-cert",
                             protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(pki["ca"]), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        with pytest.raises((ssl.SSLError, OSError)):
            client.connect("localhost", tls_port)
            client.loop(timeout=2)
            client.loop(timeout=2)
            if not client.is_connected():
                raise OSError("refused")
    finally:
        door.stop()
        board.close()
        cloud.close()
        broker.stop()


def test_home_assistant_discovery(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    cloud = Recorder(broker.port)
    config = _door_config(tmp_path, {"host": "127.0.0.1", "port": broker.port, "tls": False,
                                     "home_assistant": True})
    board = BoardProcess(config, tmp_path / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        def discovery() -> dict[str, dict[str, object]]:
            with cloud.cond:
                return {t: json.loads(p) for t, p, _ in cloud.messages
                        if t.startswith("homeassistant/") and t.endswith("/config") and p}

        assert cloud.wait(lambda: len(discovery()) == 3, 15)
        entities = discovery()
        kinds = sorted(t.split("/")[1] for t in entities)
        assert kinds == ["binary_sensor", "binary_sensor", "sensor"]
        for entity in entities.values():
            assert "command_topic" not in entity, "nothing in Home Assistant may unlock the door"
            assert entity["availability"][0]["topic"] == STATUS  # type: ignore[index]
            assert entity["unique_id"] and entity["device"]
        before = len(discovery())
        count = lambda: sum(1 for t, _, _ in cloud.messages if t.endswith("/config"))  # noqa: E731
        seen = count()
        cloud.publish("homeassistant/status", "online")  # Home Assistant restarted
        assert cloud.wait(lambda: count() >= seen + before, 10), "discovery republished"
        time.sleep(0.2)
    finally:
        door.stop()
        board.close()
        cloud.close()
        broker.stop()
