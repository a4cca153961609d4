"""`officepass serve --config FILE`: one TOML file; an unknown or wrong key is named, as the door does.

[service]
listen = "127.0.0.1:8080"                        # [127.0.0.1:8080]
base_url = "https://pass.example"                # required: what the QR by the door opens (§8)
database = "sqlite:////var/lib/officepass/officepass.db"   # [that] or a postgresql+psycopg:// URL
keys = "/var/lib/officepass/keys"                # [that]: the signing keys (0600 files)
secret_file = "/var/lib/officepass/session.key"  # [that]: made on first start, mode 0600
releases = "/var/lib/officepass/releases"        # [that]: door releases (officepass release publish)
offline_alarm_seconds = 300                      # [300]: a door offline this long is an alarm
trusted_proxies = []                             # [[]] addresses whose X-Forwarded-For is believed

[support]                                        # optional: without it no alarm is mailed
email = "support@pass.example"                   # required in the section: who hears of alarms
smtp_host = "127.0.0.1"                          # [127.0.0.1]
smtp_port = 25                                   # [25]
sender = "officepass@localhost"                  # [officepass@localhost]
phone = "03-0000-0000"                           # [""] the support centre, on the trouble screen

[mqtt]                                           # the service's own identity on the broker (§4, §8)
host = "127.0.0.1"                               # required
port = 8883                                      # [8883 with tls, 1883 without]
tls = true                                       # [true]
ca_file = "/var/lib/officepass/ca/ca.pem"        # optional: the broker's CA (officepass ca init)
cert_file = ""                                   # optional: a client certificate ...
key_file = ""                                    # ... and its key (0600)
username = "svc/a"                               # optional: svc/{instance}; the instance names the
password_file = "/var/lib/officepass/broker/secrets/svc_a.password"   # reply topic; optional
topic_prefix = "officepass/v1"                   # ["officepass/v1"]

[broker]                                         # optional: what `officepass broker-config` writes
listen = "0.0.0.0:8883"                          # [0.0.0.0:8883] the TLS listener
plain_port = 0                                   # [0 = none] a plain listener on 127.0.0.1 (tests)
ca_dir = "/var/lib/officepass/ca"                # [that] the operator's CA (officepass ca init)
hostnames = ["broker.example"]                   # [[]] the broker certificate's names
instances = ["a"]                                # [["a"]] every service instance (svc/{name})
observers = []                                   # [[]] read-only identities (observer/{name})
home_assistant = false                           # [false] doors may publish HA discovery
config_dir = "/var/lib/officepass/broker"        # [that] where broker-config writes (enrollment too)
reload = ["systemctl", "reload", "mosquitto"]    # [[]] run after enrollment changed the broker's
                                                 # files (SIGHUP: nobody is dropped); [] = none
door_host = "broker.example"                     # [""] the broker address enrolled doors are given
                                                 # ("" = the first of hostnames, else localhost)
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wire.acl import instance_of
from wire.credentials import CredentialProblems, MqttCredentials, load_credentials, loose_secret
from wire.rules import DEFAULT_PREFIX
from wire.topics import ID_RE, prefix_problem


class SettingsError(ValueError):
    """The serve file has problems; `problems` names each key and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

SPEC: dict[str, dict[str, tuple[type, Any]]] = {
    "service": {"listen": (str, "127.0.0.1:8080"), "base_url": (str, None),
                "database": (str, "sqlite:////var/lib/officepass/officepass.db"),
                "keys": (str, "/var/lib/officepass/keys"),
                "secret_file": (str, "/var/lib/officepass/session.key"),
                "releases": (str, "/var/lib/officepass/releases"),
                "offline_alarm_seconds": (int, 300), "trusted_proxies": (list, [])},
    "mqtt": {"host": (str, None), "port": (int, 0), "topic_prefix": (str, DEFAULT_PREFIX),
             "tls": (bool, True), "ca_file": (str, ""), "cert_file": (str, ""), "key_file": (str, ""),
             "username": (str, ""), "password_file": (str, "")},
    "support": {"email": (str, None), "smtp_host": (str, "127.0.0.1"), "smtp_port": (int, 25),
                "sender": (str, "officepass@localhost"), "phone": (str, "")},
    "broker": {"listen": (str, "0.0.0.0:8883"), "plain_port": (int, 0),
               "ca_dir": (str, "/var/lib/officepass/ca"),
               "hostnames": (list, []), "instances": (list, ["a"]), "observers": (list, []),
               "home_assistant": (bool, False), "config_dir": (str, "/var/lib/officepass/broker"),
               "reload": (tuple, []), "door_host": (str, "")},
}
OPTIONAL_SECTIONS = frozenset({"support", "broker"})


@dataclass(frozen=True)
class Support:
    """Where alarm mail goes (the `[support]` section)."""

    email: str
    smtp_host: str
    smtp_port: int
    sender: str
    phone: str = ""  # the support centre's number, shown on the unlock-trouble screen


@dataclass(frozen=True)
class MqttSettings:
    """The service's `[mqtt]`: where the broker is and who the service is there."""

    host: str
    port: int
    topic_prefix: str
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    username: str | None
    password_file: str | None

    @property
    def instance(self) -> str | None:
        """This instance's name: from its identity (`svc/{instance}`); None without one."""
        return instance_of(self.username) if self.username else None

    def credentials(self) -> MqttCredentials:
        """Loaded; raises SettingsError naming the key whose file does not work."""
        try:
            return load_credentials(tls=self.tls, ca_file=self.ca_file, cert_file=self.cert_file,
                                    key_file=self.key_file, username=self.username,
                                    password_file=self.password_file)
        except CredentialProblems as exc:
            raise SettingsError(exc.problems) from None


@dataclass(frozen=True)
class BrokerSettings:
    """The service's `[broker]`: what `officepass broker-config` writes."""

    listen_host: str
    listen_port: int
    plain_port: int | None
    ca_dir: Path
    hostnames: list[str]
    instances: list[str]
    observers: list[str]
    home_assistant: bool
    config_dir: Path
    reload: list[str]  # run after the broker's files changed; [] = none
    door_host: str  # the broker address enrolled doors are given


@dataclass(frozen=True)
class Settings:
    listen: str
    base_url: str
    database: str
    keys: Path
    secret_file: Path
    mqtt: MqttSettings
    offline_alarm_seconds: int
    support: Support | None
    broker: BrokerSettings | None
    trusted_proxies: list[str] = field(default_factory=list)
    releases: Path = Path("/var/lib/officepass/releases")

    def secret(self) -> str:
        """The session cookie's signing secret: made once, kept 0600 beside the service's state."""
        if not self.secret_file.exists():
            self.secret_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        if (why := loose_secret(str(self.secret_file))) is not None:
            raise SettingsError([f"service.secret_file: {why}"])
        return self.secret_file.read_text().strip()


def load_settings(path: Path) -> Settings:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError([f"{path}: {exc}"]) from None
    problems = [f"{name}: unknown section" for name in doc if name not in SPEC]
    values: dict[str, Any] = {}
    for section, fields in SPEC.items():
        if section in OPTIONAL_SECTIONS and section not in doc:
            continue
        table = doc.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"{section}: must be a table")
            continue
        problems += [f"{section}.{key}: unknown key" for key in table if key not in fields]
        for key, (kind, default) in fields.items():
            value = table.get(key, default)
            if value is None:
                problems.append(f"{section}.{key}: required key is missing")
            elif kind is tuple:  # a command line: a list of words, the first the program
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    problems.append(f"{section}.{key}: must be a command, a list of non-empty strings")
                else:
                    values[f"{section}.{key}"] = value
            elif kind is list:
                if not isinstance(value, list) or not all(isinstance(v, str) and ID_RE.fullmatch(v)
                                                          for v in value):
                    problems.append(f"{section}.{key}: must be a list of names (1-64 of A-Za-z0-9._-)")
                else:
                    values[f"{section}.{key}"] = value
            elif kind is bool:
                if not isinstance(value, bool):
                    problems.append(f"{section}.{key}: must be true or false")
                else:
                    values[f"{section}.{key}"] = value
            elif not isinstance(value, kind) or isinstance(value, bool):
                problems.append(f"{section}.{key}: must be {'an integer' if kind is int else 'a string'}")
            else:
                values[f"{section}.{key}"] = value
    if values.get("service.offline_alarm_seconds", 1) < 1:
        problems.append("service.offline_alarm_seconds: must be at least 1")
    prefix = values.get("mqtt.topic_prefix")
    if isinstance(prefix, str) and (why := prefix_problem(prefix)) is not None:
        problems.append(f"mqtt.topic_prefix: {why}")
    username = values.get("mqtt.username")
    if username and instance_of(username) is None:
        problems.append(f"mqtt.username: {username!r} is not a service identity svc/{{instance}}")
    if values.get("mqtt.password_file") and not username:
        problems.append("mqtt.password_file: needs mqtt.username")
    if (why := loose_secret(values.get("mqtt.password_file"))) is not None:
        problems.append(f"mqtt.password_file: {why}")
    if "broker" in doc:
        listen = str(values.get("broker.listen", ""))
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.append(f"broker.listen: {listen!r} is not HOST:PORT")
        if not 0 <= int(values.get("broker.plain_port", 0)) <= 65535:
            problems.append("broker.plain_port: must be 0 (none) or a port")
    if problems:
        raise SettingsError(problems)
    support = (Support(values["support.email"], values["support.smtp_host"], values["support.smtp_port"],
                       values["support.sender"], values["support.phone"]) if "support" in doc else None)
    tls = values["mqtt.tls"]
    mqtt = MqttSettings(values["mqtt.host"], values["mqtt.port"] or (8883 if tls else 1883),
                        values["mqtt.topic_prefix"], tls, values["mqtt.ca_file"] or None,
                        values["mqtt.cert_file"] or None, values["mqtt.key_file"] or None,
                        values["mqtt.username"] or None, values["mqtt.password_file"] or None)
    broker = None
    if "broker" in doc:
        host, _, port = values["broker.listen"].rpartition(":")
        broker = BrokerSettings(host, int(port), values["broker.plain_port"] or None,
                                Path(values["broker.ca_dir"]), values["broker.hostnames"],
                                values["broker.instances"], values["broker.observers"],
                                values["broker.home_assistant"], Path(values["broker.config_dir"]),
                                values["broker.reload"], values["broker.door_host"]
                                or (values["broker.hostnames"] or ["localhost"])[0])
    return Settings(values["service.listen"], values["service.base_url"], values["service.database"],
                    Path(values["service.keys"]), Path(values["service.secret_file"]), mqtt,
                    values["service.offline_alarm_seconds"], support, broker,
                    values["service.trusted_proxies"], Path(values["service.releases"]))
