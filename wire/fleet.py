"""Fleet operations (contract §11), as both sides spell them: what a remote configuration may set,
the enrollment exchange over HTTPS, and the states a door reports for its configuration and updates.

Enrollment is one request: the technician's Pi posts the one-time code and a certificate signing
request for the key pair it just made (`EnrollRequest`) to `ENROLL_PATH` on the service; the answer
is an `EnrollGrant` (the door's broker identity, the broker, the trusted code keys, the presence
URL) or an `EnrollRefusal` naming why (`EnrollError`).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wire.topics import ID_RE

ENROLL_PATH = "/enroll/v1"
ENROLL_CODE_TTL_SECONDS = 24 * 3600
# Crockford's base32 (no I, L, O, U), five groups of four: 100 bits, typed or pasted over SSH.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENROLL_CODE_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){4}")
MAX_ENROLL_BYTES = 64 * 1024
# A door's health after a switch (contract §11): READY, broker connected, self-test, within this.
HEALTH_SECONDS = 120

# What a remote configuration may set (contract §11): settings, never wiring. Pins, readers, the
# broker and storage stay in the door's own file; `door.store` and `door.name` are the door itself.
REMOTE_KEYS: Mapping[str, frozenset[str]] = {
    "door": frozenset({"seats", "session_limit_minutes", "auto_checkout_after_minutes"}),
    "lock": frozenset({"unlock_seconds", "max_unlock_seconds", "door_held_seconds"}),
    "presence": frozenset({"url", "window_seconds", "accept_seconds", "require"}),
    "credentials": frozenset({"issuer", "keys", "max_clock_skew_seconds", "max_code_ttl_seconds",
                              "max_command_ttl_seconds", "command_clock_skew_seconds",
                              "commands_need_synced_clock", "max_revoked_members"}),
    "update": frozenset({"quiet_wait_minutes", "release"}),
}


def remote_key_problem(section: str, key: str) -> str | None:
    """Why `section.key` may not be set remotely, or None."""
    if section not in REMOTE_KEYS:
        return f"{section}: not a section a remote configuration may set ({', '.join(sorted(REMOTE_KEYS))})"
    if key not in REMOTE_KEYS[section]:
        return f"{section}.{key}: stays in the door's own file (wiring and identity are not set remotely)"
    return None


class ConfigRefusal(StrEnum):
    """Why a door did not apply a configuration document (its status says it, with the detail)."""

    MALFORMED = "malformed"  # not a signed document from a trusted key and issuer
    WRONG_DOOR = "wrong_door"
    NOT_NEWER = "not_newer"
    NOT_REMOTE = "not_remote"  # sets a key that stays in the door's file
    INVALID = "invalid"  # a value the door's own rules refuse


class UpdateState(StrEnum):
    """Where a door is with a release (contract §11)."""

    IDLE = "idle"
    DOWNLOADING = "downloading"
    WAITING_QUIET = "waiting_quiet"
    SWITCHING = "switching"
    APPLIED = "applied"
    FAILED = "failed"  # refused before switching: download, signature, hashes, install
    ROLLED_BACK = "rolled_back"  # switched, not healthy in time, back on the old version


class EnrollError(StrEnum):
    UNKNOWN_CODE = "unknown_code"
    USED_CODE = "used_code"
    EXPIRED_CODE = "expired_code"
    BAD_REQUEST = "bad_request"
    NOT_READY = "not_ready"  # the service cannot hand out an identity (no CA, no broker config)


class FleetWireError(ValueError):
    """A fleet message that does not fit: the message names the field and why."""


def new_enroll_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))
    return "-".join(raw[i:i + 4] for i in range(0, 20, 4))


def normal_enroll_code(text: str) -> str | None:
    """The code as typed (any case, spaces around), in its one form; None when it cannot be one."""
    code = text.strip().upper()
    return code if ENROLL_CODE_RE.fullmatch(code) else None


def _body(data: bytes | str) -> dict[str, Any]:
    if len(data) > MAX_ENROLL_BYTES:
        raise FleetWireError(f"payload: over {MAX_ENROLL_BYTES} bytes")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise FleetWireError("payload: not JSON") from None
    if not isinstance(body, dict):
        raise FleetWireError("payload: not a JSON object")
    return body


def _str(body: Mapping[str, Any], key: str, *, max_len: int = 256, pattern: re.Pattern[str] | None = None,
         empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not value and not empty) or len(value) > max_len:
        raise FleetWireError(f"{key}: missing or not text of at most {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise FleetWireError(f"{key}: {value[:40]!r} is not of the form {pattern.pattern}")
    return value


def _int(body: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FleetWireError(f"{key}: missing or not an integer in {low}..{high}")
    return value


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise FleetWireError(f"{key}: missing or not true or false")
    return value


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    code: str
    csr_pem: str  # PKCS#10 for the door's own key pair: its signature proves the door holds the key

    def to_json(self) -> str:
        return json.dumps({"code": self.code, "csr": self.csr_pem})

    @classmethod
    def from_json(cls, data: bytes | str) -> EnrollRequest:
        body = _body(data)
        return cls(code=_str(body, "code", max_len=64), csr_pem=_str(body, "csr", max_len=8192))


@dataclass(frozen=True, slots=True)
class EnrollGrant:
    """What an enrolled door is given (contract §11). `password` and the certificate are its broker
    identity (§4): the shipped broker checks the password; a broker that checks client certificates
    takes the certificate, made for the door's own key."""

    store: str
    door: str
    controller: bool  # the store's one door controller (seats and sessions)
    broker_host: str
    broker_port: int
    tls: bool
    topic_prefix: str
    username: str
    password: str
    ca_pem: str
    certificate_pem: str
    issuer: str
    keys: Mapping[str, str]  # kid -> base64 Ed25519 public key
    presence_url: str | None

    def to_json(self) -> str:
        return json.dumps({
            "store": self.store, "door": self.door, "controller": self.controller,
            "broker": {"host": self.broker_host, "port": self.broker_port, "tls": self.tls,
                       "topic_prefix": self.topic_prefix, "username": self.username,
                       "password": self.password, "ca": self.ca_pem},
            "certificate": self.certificate_pem, "issuer": self.issuer, "keys": dict(self.keys),
            "presence_url": self.presence_url,
        })

    @classmethod
    def from_json(cls, data: bytes | str) -> EnrollGrant:
        body = _body(data)
        broker = body.get("broker")
        if not isinstance(broker, dict):
            raise FleetWireError("broker: missing or not an object")
        keys = body.get("keys")
        if not isinstance(keys, dict) or not keys or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise FleetWireError("keys: missing or not an object of kid: base64 key")
        presence = body.get("presence_url")
        if presence is not None and not isinstance(presence, str):
            raise FleetWireError("presence_url: not text")
        return cls(
            store=_str(body, "store", pattern=ID_RE), door=_str(body, "door", pattern=ID_RE),
            controller=_bool(body, "controller"),
            broker_host=_str(broker, "host"), broker_port=_int(broker, "port", 1, 65535),
            tls=_bool(broker, "tls"), topic_prefix=_str(broker, "topic_prefix"),
            username=_str(broker, "username"), password=_str(broker, "password"),
            ca_pem=_str(broker, "ca", max_len=16384, empty=True),
            certificate_pem=_str(body, "certificate", max_len=16384, empty=True),
            issuer=_str(body, "issuer"), keys=keys, presence_url=presence,
        )


@dataclass(frozen=True, slots=True)
class EnrollRefusal:
    error: EnrollError
    detail: str

    def to_json(self) -> str:
        return json.dumps({"error": self.error, "detail": self.detail})

    @classmethod
    def from_json(cls, data: bytes | str) -> EnrollRefusal:
        body = _body(data)
        error = body.get("error")
        if not isinstance(error, str) or error not in EnrollError._value2member_map_:
            raise FleetWireError(f"error: {str(error)[:40]!r} is not one of {', '.join(EnrollError)}")
        return cls(EnrollError(error), _str(body, "detail", max_len=1000, empty=True))


# Releases (contract §11), under the service's base URL: the signed manifest, then each file by name.
RELEASES_PATH = "/releases"


def release_manifest_path(version: str) -> str:
    return f"{RELEASES_PATH}/{version}/manifest"


def release_file_path(version: str, name: str) -> str:
    return f"{RELEASES_PATH}/{version}/files/{name}"


# The member app's door page (contract §8), as a door's `presence.url` holds it: {store} and {door}.
DOOR_PAGE = "/s/{store}/{door}"


def door_page_template(base_url: str) -> str:
    return base_url.rstrip("/") + DOOR_PAGE


def enroll_command(service_url: str, code: str) -> str:
    """The one line a technician runs on a new Pi after install-pi.sh."""
    return f"sudo /opt/doorctl/.venv/bin/doorctl enroll --service {service_url} {code}"
