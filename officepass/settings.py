"""`officepass serve --config FILE`: one TOML file; an unknown or wrong key is named, as the door does.

[service]
listen = "127.0.0.1:8080"                        # [127.0.0.1:8080]
base_url = "https://pass.example"                # required: what the QR by the door opens (§8)
database = "sqlite:////var/lib/officepass/officepass.db"   # [that] or a postgresql+psycopg:// URL
keys = "/var/lib/officepass/keys"                # [that]: the signing keys (0600 files)
secret_file = "/var/lib/officepass/session.key"  # [that]: made on first start, mode 0600
offline_alarm_seconds = 300                      # [300]: a door offline this long is an alarm

[support]                                        # optional: without it no alarm is mailed
email = "support@pass.example"                   # required in the section: who hears of alarms
smtp_host = "127.0.0.1"                          # [127.0.0.1]
smtp_port = 25                                   # [25]
sender = "officepass@localhost"                  # [officepass@localhost]

[mqtt]
host = "127.0.0.1"                               # required
port = 1883                                      # [1883]
topic_prefix = "officepass/v1"                   # ["officepass/v1"]
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire.rules import DEFAULT_PREFIX
from wire.topics import prefix_problem


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
                "offline_alarm_seconds": (int, 300)},
    "mqtt": {"host": (str, None), "port": (int, 1883), "topic_prefix": (str, DEFAULT_PREFIX)},
    "support": {"email": (str, None), "smtp_host": (str, "127.0.0.1"), "smtp_port": (int, 25),
                "sender": (str, "officepass@localhost")},
}
OPTIONAL_SECTIONS = frozenset({"support"})


@dataclass(frozen=True)
class Support:
    """Where alarm mail goes (the `[support]` section)."""

    email: str
    smtp_host: str
    smtp_port: int
    sender: str


@dataclass(frozen=True)
class Settings:
    listen: str
    base_url: str
    database: str
    keys: Path
    secret_file: Path
    mqtt_host: str
    mqtt_port: int
    topic_prefix: str
    offline_alarm_seconds: int
    support: Support | None

    def secret(self) -> str:
        """The session cookie's signing secret: made once, kept 0600 beside the service's state."""
        if not self.secret_file.exists():
            self.secret_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
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
            elif not isinstance(value, kind) or isinstance(value, bool):
                problems.append(f"{section}.{key}: must be {'an integer' if kind is int else 'a string'}")
            else:
                values[f"{section}.{key}"] = value
    if values.get("service.offline_alarm_seconds", 1) < 1:
        problems.append("service.offline_alarm_seconds: must be at least 1")
    prefix = values.get("mqtt.topic_prefix")
    if isinstance(prefix, str) and (why := prefix_problem(prefix)) is not None:
        problems.append(f"mqtt.topic_prefix: {why}")
    if problems:
        raise SettingsError(problems)
    support = (Support(values["support.email"], values["support.smtp_host"], values["support.smtp_port"],
                       values["support.sender"]) if "support" in doc else None)
    return Settings(values["service.listen"], values["service.base_url"], values["service.database"],
                    Path(values["service.keys"]), Path(values["service.secret_file"]), values["mqtt.host"],
                    values["mqtt.port"], values["mqtt.topic_prefix"], values["service.offline_alarm_seconds"],
                    support)
