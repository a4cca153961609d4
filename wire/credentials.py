"""What a client of the closed broker connects with (contract §4): TLS with the operator's CA (and a
client certificate, where the broker asks for one), a username and its password. The door and the
service take the same `[mqtt]` keys and load them here, each problem named by its key.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CredentialProblems(ValueError):
    """The files the `[mqtt]` keys name cannot be used; `problems` names each key and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class MqttCredentials:
    """The files [mqtt] points at, loaded: what a client connects with."""

    tls: ssl.SSLContext | None
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never the password, in a log line or a traceback
        return f"MqttCredentials(tls={self.tls is not None}, username={self.username!r})"

    def apply(self, client: Any) -> None:
        """Set them on a paho client before it connects."""
        if self.tls is not None:
            client.tls_set_context(self.tls)
        if self.username:
            client.username_pw_set(self.username, self.password)


def load_credentials(*, tls: bool, ca_file: str | None, cert_file: str | None, key_file: str | None,
                     username: str | None, password_file: str | None,
                     section: str = "mqtt") -> MqttCredentials:
    """Load every file the keys name. Raises CredentialProblems naming each key that does not work."""
    problems: list[str] = []
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file:
            try:
                context.load_verify_locations(cafile=ca_file)
            except FileNotFoundError:
                problems.append(f"{section}.ca_file: file {ca_file} does not exist")
            except (ssl.SSLError, OSError, ValueError) as exc:
                problems.append(f"{section}.ca_file: {ca_file} is not a PEM CA certificate ({exc})")
        if cert_file and key_file:
            for key, value in (("cert_file", cert_file), ("key_file", key_file)):
                if not Path(value).is_file():
                    problems.append(f"{section}.{key}: file {value} does not exist")
            if not problems:
                try:
                    context.load_cert_chain(cert_file, key_file)
                except (ssl.SSLError, OSError, ValueError) as exc:
                    problems.append(f"{section}.cert_file: {cert_file} with {section}.key_file {key_file} "
                                    f"is not a PEM certificate and its key ({exc})")
    password: str | None = None
    if password_file:
        try:
            password = Path(password_file).read_bytes().decode("utf-8").strip()
        except FileNotFoundError:
            problems.append(f"{section}.password_file: file {password_file} does not exist")
        except UnicodeDecodeError:
            problems.append(f"{section}.password_file: {password_file} is not UTF-8 text")
        except OSError as exc:
            problems.append(f"{section}.password_file: cannot read {password_file} ({exc.strerror})")
    if problems:
        raise CredentialProblems(problems)
    return MqttCredentials(context, username, password)


def loose_secret(path: str | None) -> str | None:
    """Why a secret file (a key, a password) is readable by others, or None: it must be 0600/0640."""
    if not path:
        return None
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    return f"{path} is mode {mode:o}: readable by others (chmod 600)" if mode & 0o007 else None
