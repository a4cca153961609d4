"""Strict configuration (contract §5).

The whole file is checked before anything touches hardware, and every problem
is reported at once with its key path (`lock.relay_pin`, `reader[1].port`), so
a technician fixes a file in one round trip instead of one error at a time.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.gpio import PinWiring
from drivers.picamera import parse_source
from drivers.readers import ReaderConfig
from wire.codes import RELEASE_VERSION_RE
from wire.credentials import CredentialProblems, MqttCredentials, load_credentials
from wire.rules import DEFAULT_ISSUER, DEFAULT_PREFIX
from wire.topics import prefix_problem
from wire.vocab import Act

__all__ = ["DEFAULT_ISSUER", "DEFAULT_PREFIX", "Config", "ConfigError"]

DEFAULT_PATH = Path("/etc/doorctl/doorctl.toml")
DEFAULT_STORAGE = "/var/lib/doorctl/doorctl.db"

_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)


class ConfigError(Exception):
    """Every problem found in a configuration file, one `key: why` per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# The dataclasses hold parsed values; their defaults are the field specifications' below, and
# nowhere else. Build a Config with parse_config.


@dataclass(frozen=True)
class DoorConfig:
    store: str
    name: str
    seats: int
    session_limit_minutes: int
    auto_checkout_after_minutes: int


@dataclass(frozen=True)
class LockConfig:
    relay_pin: str  # pins as gpiozero names them: GPIO17 (whatever alias the file used)
    relay_active_high: bool
    unlock_seconds: float
    max_unlock_seconds: float
    door_held_seconds: float
    door_sensor_pin: str | None = None  # optional inputs: None = not fitted
    exit_button_pin: str | None = None
    fire_alarm_pin: str | None = None
    lock_sensor_pin: str | None = None

    @property
    def wiring(self) -> PinWiring:
        return PinWiring(self.relay_pin, self.relay_active_high, self.door_sensor_pin, self.exit_button_pin,
                         self.fire_alarm_pin, self.lock_sensor_pin)


@dataclass(frozen=True)
class CredentialsConfig:
    keys: dict[str, bytes]
    issuer: str
    max_clock_skew_seconds: int
    max_code_ttl_seconds: int
    max_command_ttl_seconds: int
    command_clock_skew_seconds: int
    commands_need_synced_clock: bool
    max_revoked_members: int


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    tls: bool
    topic_prefix: str
    home_assistant: bool
    ca_file: str | None = None  # optional files and names: None = not set
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class StorageConfig:
    path: str

    @property
    def state_dir(self) -> Path:
        """Where the journal lives, and beside it the door's other state (the presence secret)."""
        return Path(self.path).parent


@dataclass(frozen=True)
class PresenceConfig:
    """Contract §9: the door's screen and the presence its app commands need."""

    url: str  # the §8 door page, {store} and {door} filled in
    window_seconds: int
    accept_seconds: int
    require: frozenset[Act]
    display: str  # "none" or "fb:/dev/fbN"

    @property
    def framebuffer(self) -> str | None:
        return self.display.removeprefix(DISPLAY_FB) if self.display.startswith(DISPLAY_FB) else None


@dataclass(frozen=True)
class UpdateConfig:
    """Contract §11: how long a configuration change or a release waits for a quiet door (relay off,
    no command in flight, nobody mid-checkout) before it goes ahead anyway."""

    quiet_wait_minutes: int
    release: str | None = None  # the release this door should run (set by the console's rollout)
    service: str | None = None  # where releases come from: the pass service (`doorctl enroll` sets it)


@dataclass(frozen=True)
class Config:
    door: DoorConfig
    lock: LockConfig
    readers: tuple[ReaderConfig, ...]
    credentials: CredentialsConfig
    mqtt: MqttConfig | None
    storage: StorageConfig
    presence: PresenceConfig | None = None
    update: UpdateConfig = field(default_factory=lambda: parse_update({}))
    source_path: Path | None = field(default=None, compare=False)


# --- field specifications -------------------------------------------------------------

Check = Callable[[Any], str | None]  # returns why the value is wrong, or None


@dataclass(frozen=True)
class Field:
    kind: tuple[type, ...]
    required: bool = False
    default: Any = None
    check: Check | None = None


def _range(lo: float | None = None, hi: float | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, float) and not math.isfinite(v):
            return "must be a finite number"
        if lo is not None and v < lo:
            return f"must be at least {lo}"
        if hi is not None and v > hi:
            return f"must be at most {hi}"
        return None

    return check


def _regex(pattern: re.Pattern[str], what: str) -> Check:
    return lambda v: None if pattern.fullmatch(v) else f"must be {what}"


def _one_of(*options: Any) -> Check:
    return lambda v: None if v in options else f"must be one of {', '.join(map(str, options))}"


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


@cache
def _header() -> Any:
    # The 40-pin header every supported Pi shares, as gpiozero knows it: the same names, aliases
    # (BCM17, BOARD11, J8:11, WPI0) and non-GPIO pins (3V3, GND) the door's pin factory will see.
    from gpiozero.pins.mock import MockFactory

    return MockFactory().board_info


def gpio_name(pin: str) -> str:
    """The GPIO a pin name means (GPIO17 for BCM17, BOARD11, J8:11...); ValueError why not."""
    found = list(_header().find_pin(pin))
    if not found:
        raise ValueError(f"{pin!r} is not a pin gpiozero knows (write GPIO17, BCM17 or BOARD11)")
    name = str(found[0][1].name)
    if not name.startswith("GPIO"):
        raise ValueError(f"{pin!r} is header pin {name}, not a GPIO")
    return name


def _pin(v: str) -> str | None:
    try:
        gpio_name(v)
    except ValueError as exc:
        return str(exc)
    return None


def _camera_source(v: str | int) -> str | None:
    if isinstance(v, int):
        return None if v >= 0 else "a device index is 0 or more"
    if not v.strip():
        return "must not be empty"
    try:
        parse_source(v)
    except ValueError as exc:
        return str(exc)
    return None


_STR, _INT, _BOOL, _NUM = (str,), (int,), (bool,), (int, float)
_PIN = Field(_STR, check=_pin)
_ID = _regex(_ID_RE, "1-64 characters of A-Za-z0-9._-")

DOOR_FIELDS = {
    "store": Field(_STR, required=True, check=_ID),
    "name": Field(_STR, required=True, check=_ID),
    "seats": Field(_INT, default=2, check=_range(0, 1000)),
    "session_limit_minutes": Field(_INT, default=120, check=_range(1, 24 * 60)),
    "auto_checkout_after_minutes": Field(_INT, default=30, check=_range(0, 7 * 24 * 60)),
}
LOCK_FIELDS = {
    "relay_pin": Field(_STR, required=True, check=_pin),
    "relay_active_high": Field(_BOOL, default=True),
    "unlock_seconds": Field(_NUM, default=5, check=_range(0.2, 60)),
    "max_unlock_seconds": Field(_NUM, default=15, check=_range(0.5, 120)),
    "door_sensor_pin": _PIN,
    "exit_button_pin": _PIN,
    "fire_alarm_pin": _PIN,
    "lock_sensor_pin": _PIN,
    "door_held_seconds": Field(_NUM, default=30, check=_range(1, 3600)),
}
READER_COMMON = {
    "name": Field(_STR, required=True, check=_ID),
    "type": Field(_STR, required=True, check=_one_of("camera", "serial")),
    "side": Field(_STR, required=True, check=_one_of("entry", "exit")),
}
READER_BY_TYPE = {
    "camera": {"source": Field((str, int), required=True, check=_camera_source)},
    "serial": {
        "port": Field(_STR, required=True, check=_nonempty),
        "baudrate": Field(_INT, default=9600, check=_one_of(*_BAUDRATES)),
    },
}
CREDENTIAL_FIELDS = {
    "issuer": Field(_STR, default=DEFAULT_ISSUER, check=_nonempty),
    "max_clock_skew_seconds": Field(_INT, default=60, check=_range(0, 3600)),
    "max_code_ttl_seconds": Field(_INT, default=300, check=_range(1, 86400)),
    "max_command_ttl_seconds": Field(_INT, default=60, check=_range(1, 86400)),
    # How far the door's clock may disagree with the issuer's for a command (not 60 s as for a
    # code shown at the door: a command older than its ttl must not run), and whether a door whose
    # clock NTP has not synchronized refuses commands rather than guess.
    "command_clock_skew_seconds": Field(_INT, default=5, check=_range(0, 60)),
    "commands_need_synced_clock": Field(_BOOL, default=True),
    "max_revoked_members": Field(_INT, default=100_000, check=_range(1, 10_000_000)),
}
MQTT_FIELDS = {
    "host": Field(_STR, required=True, check=_nonempty),
    "port": Field(_INT, check=_range(1, 65535)),
    "tls": Field(_BOOL, default=True),
    "ca_file": Field(_STR),
    "cert_file": Field(_STR),
    "key_file": Field(_STR),
    "username": Field(_STR),
    "password_file": Field(_STR),
    "topic_prefix": Field(
        _STR, default=DEFAULT_PREFIX, check=prefix_problem
    ),
    "home_assistant": Field(_BOOL, default=False),
}
STORAGE_FIELDS = {"path": Field(_STR, default=DEFAULT_STORAGE, check=_nonempty)}
DISPLAY_NONE, DISPLAY_FB = "none", "fb:"
# Acts that free a seat never need presence: a member who already left can still check out.
NEVER_PRESENCE = (Act.CHECKOUT_BEGIN, Act.CHECKOUT)


def _door_url(v: str) -> str | None:
    if not re.fullmatch(r"https?://[^\s]+", v):
        return "must be an http:// or https:// URL"
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(v) if name is not None}
    except ValueError as exc:
        return f"has a broken {{placeholder}} ({exc})"
    return None if names <= {"store", "door"} else "may hold only the placeholders {store} and {door}"


def _presence_acts(v: list[Any]) -> str | None:
    if not all(isinstance(a, str) and a in Act.__members__.values() for a in v):
        return f"must list acts among {', '.join(Act)}"
    if any(a in NEVER_PRESENCE for a in v):
        return f"must not hold {' or '.join(NEVER_PRESENCE)}: checking out never needs presence"
    return None


def _display(v: str) -> str | None:
    if v == DISPLAY_NONE or re.fullmatch(r"fb:/dev/fb[0-9]+", v):
        return None
    return f'must be "{DISPLAY_NONE}" or "fb:/dev/fbN"'


PRESENCE_FIELDS = {
    "url": Field(_STR, required=True, check=_door_url),
    "window_seconds": Field(_INT, default=10, check=_range(5, 60)),
    "accept_seconds": Field(_INT, default=30, check=_range(5, 300)),
    "require": Field((list,), default=[Act.CHECK_IN.value, Act.UNLOCK.value], check=_presence_acts),
    "display": Field(_STR, default=DISPLAY_NONE, check=_display),
}
def _service_url(v: str) -> str | None:
    return None if re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", v) else "must be an http:// or https:// URL"


UPDATE_FIELDS = {
    "quiet_wait_minutes": Field(_INT, default=30, check=_range(0, 24 * 60)),
    "release": Field(_STR, check=_regex(RELEASE_VERSION_RE, "a release version")),
    "service": Field(_STR, check=_service_url),
}
SECTIONS = {"door", "lock", "reader", "credentials", "mqtt", "storage", "presence", "update"}
PIN_KEYS = ("relay_pin", "door_sensor_pin", "exit_button_pin", "fire_alarm_pin", "lock_sensor_pin")


def _type_name(kind: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", float: "a number", list: "an array"}
    if kind == _NUM:
        return "a number"
    return " or ".join(names[k] for k in kind)


class _Reader:
    """Collects problems while pulling typed values out of parsed TOML."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, data: dict[str, Any], path: str, fields: dict[str, Field]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in data:
            if key not in fields:
                self.problems.append(f"{path}.{key}: unknown key")
        for key, spec in fields.items():
            where = f"{path}.{key}"
            if key not in data:
                if spec.required:
                    self.problems.append(f"{where}: required key is missing")
                elif spec.default is not None:
                    out[key] = spec.default
                continue
            value = data[key]
            # bool is an int in Python; TOML keeps them apart and so do we.
            if isinstance(value, bool) != (bool in spec.kind) or not isinstance(value, spec.kind):
                self.problems.append(f"{where}: must be {_type_name(spec.kind)}, got {value!r}")
                continue
            why = spec.check(value) if spec.check else None
            if why:
                self.problems.append(f"{where}: {why} (got {value!r})")
                continue
            out[key] = value
        return out

    def section(self, doc: dict[str, Any], name: str) -> dict[str, Any] | None:
        if name not in doc:
            return None
        value = doc[name]
        if not isinstance(value, dict):
            self.problems.append(f"{name}: must be a table [{name}]")
            return None
        return value


def parse_config(doc: dict[str, Any], source_path: Path | None = None) -> Config:
    """Build a Config from parsed TOML or raise ConfigError listing every problem."""
    r = _Reader()
    for name in doc:
        if name not in SECTIONS:
            r.problems.append(f"{name}: unknown section or key")

    door_raw = r.section(doc, "door")
    if door_raw is None and "door" not in doc:
        r.problems.append("door: required section [door] is missing")
    door = r.table(door_raw or {}, "door", DOOR_FIELDS) if door_raw is not None else {}

    lock_raw = r.section(doc, "lock")
    if lock_raw is None and "lock" not in doc:
        r.problems.append("lock: required section [lock] is missing")
    lock = r.table(lock_raw or {}, "lock", LOCK_FIELDS) if lock_raw is not None else {}
    if lock:
        if (
            "unlock_seconds" in lock and "max_unlock_seconds" in lock
            and lock["unlock_seconds"] > lock["max_unlock_seconds"]
        ):
            r.problems.append("lock.unlock_seconds: must not exceed lock.max_unlock_seconds "
                              f"({lock['unlock_seconds']} > {lock['max_unlock_seconds']})")
        pins: dict[str, str] = {}
        for key in PIN_KEYS:
            if key not in lock:
                continue
            gpio = lock[key] = gpio_name(lock[key])  # one name per GPIO, whatever alias was written
            if gpio in pins:
                r.problems.append(f"lock.{key}: {gpio} is already used by lock.{pins[gpio]}")
            pins[gpio] = key

    readers = _readers(r, doc.get("reader", []))
    credentials = _credentials(r, doc)

    mqtt: dict[str, Any] | None = None
    mqtt_raw = r.section(doc, "mqtt")
    if mqtt_raw is not None:
        mqtt = r.table(mqtt_raw, "mqtt", MQTT_FIELDS)
        if "tls" in mqtt:
            mqtt.setdefault("port", 8883 if mqtt["tls"] else 1883)
        if ("cert_file" in mqtt) != ("key_file" in mqtt):
            r.problems.append("mqtt.cert_file: cert_file and key_file go together")
        if "password_file" in mqtt and "username" not in mqtt:
            r.problems.append("mqtt.password_file: needs mqtt.username")

    storage_raw = r.section(doc, "storage")
    storage = r.table(storage_raw or {}, "storage", STORAGE_FIELDS)
    if source_path is not None and "path" in storage:
        # A relative journal path is relative to the config file, not to wherever doorctl ran.
        storage["path"] = str((source_path.parent / storage["path"]).resolve())

    presence = _presence(r, doc, door)
    update = r.table(r.section(doc, "update") or {}, "update", UPDATE_FIELDS)

    if r.problems or credentials is None:
        raise ConfigError(r.problems or ["credentials: missing"])
    return Config(
        door=DoorConfig(**door),
        lock=LockConfig(**lock),
        readers=tuple(readers),
        credentials=credentials,
        mqtt=None if mqtt is None else _mqtt_config(mqtt),
        storage=StorageConfig(**storage),
        presence=presence,
        update=UpdateConfig(**update),
        source_path=source_path,
    )


def parse_update(values: dict[str, Any]) -> UpdateConfig:
    """An [update] section's values over its defaults (already checked)."""
    return UpdateConfig(**{k: values.get(k, f.default) for k, f in UPDATE_FIELDS.items()})


def _presence(r: _Reader, doc: dict[str, Any], door: dict[str, Any]) -> PresenceConfig | None:
    raw = r.section(doc, "presence")
    if raw is None:
        return None
    before = len(r.problems)
    values = r.table(raw, "presence", PRESENCE_FIELDS)
    window, accept = values.get("window_seconds"), values.get("accept_seconds")
    if window is not None and accept is not None and accept < window:
        r.problems.append("presence.accept_seconds: must be at least presence.window_seconds "
                          f"({accept} < {window})")
    if len(r.problems) > before or "store" not in door or "name" not in door:
        return None
    return PresenceConfig(url=values["url"].format(store=door["store"], door=door["name"]),
                          window_seconds=values["window_seconds"], accept_seconds=values["accept_seconds"],
                          require=frozenset(Act(a) for a in values["require"]), display=values["display"])


def _mqtt_config(values: dict[str, Any]) -> MqttConfig:
    # Empty strings in the optional keys mean "not set", as the contract's example writes them.
    cleaned: dict[str, Any] = {k: (v or None) if k in _OPTIONAL_TEXT else v for k, v in values.items()}
    return MqttConfig(**cleaned)


# Empty strings in these keys mean "not set", as the contract's example writes them.
_OPTIONAL_TEXT = {"ca_file", "cert_file", "key_file", "username", "password_file"}


def _readers(r: _Reader, raw: Any) -> list[ReaderConfig]:
    if not isinstance(raw, list):
        r.problems.append("reader: must be an array of tables [[reader]]")
        return []
    readers: list[ReaderConfig] = []
    seen: set[str] = set()
    ports: dict[str, str] = {}  # serial port -> the reader that has it
    for i, item in enumerate(raw):
        path = f"reader[{i}]"
        if not isinstance(item, dict):
            r.problems.append(f"{path}: must be a table")
            continue
        kind = item.get("type")
        fields = dict(READER_COMMON)
        if kind in READER_BY_TYPE:
            fields.update(READER_BY_TYPE[kind])
        else:
            # The type itself is wrong: do not also call every type-specific key unknown.
            for specific in READER_BY_TYPE.values():
                fields.update({k: Field(f.kind) for k, f in specific.items()})
        before = len(r.problems)
        values = r.table(item, path, fields)
        name = values.get("name")
        if name is not None:
            if name in seen:
                r.problems.append(f"{path}.name: reader name {name!r} is used twice")
            seen.add(name)
        port = values.get("port")
        if isinstance(port, str):
            if port in ports:
                r.problems.append(f"{path}.port: {port} is already read by reader {ports[port]!r}; "
                                  "one serial port carries one scanner")
            ports[port] = str(name)
        if len(r.problems) == before:
            readers.append(ReaderConfig(**values))
    return readers


def _credentials(r: _Reader, doc: dict[str, Any]) -> CredentialsConfig | None:
    raw = r.section(doc, "credentials")
    if raw is None:
        if "credentials" not in doc:
            r.problems.append("credentials: required section [credentials] is missing")
        return None
    before = len(r.problems)
    keys_raw = raw.get("keys")
    values = r.table({k: v for k, v in raw.items() if k != "keys"}, "credentials", CREDENTIAL_FIELDS)
    keys: dict[str, bytes] = {}
    if keys_raw is None:
        r.problems.append("credentials.keys: required table [credentials.keys] is missing")
    elif not isinstance(keys_raw, dict):
        r.problems.append("credentials.keys: must be a table of kid = base64 public key")
    else:
        for kid, value in keys_raw.items():
            where = f"credentials.keys.{kid}"
            if not 1 <= len(kid.encode("utf-8")) <= 16:
                r.problems.append(f"{where}: key name (the kid) must be 1-16 bytes of UTF-8")
                continue
            if not isinstance(value, str):
                r.problems.append(f"{where}: must be a base64 string")
                continue
            try:
                key = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                r.problems.append(f"{where}: is not valid base64")
                continue
            if len(key) != 32:
                r.problems.append(f"{where}: must decode to a 32-byte Ed25519 public key, got {len(key)}")
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key)
            except ValueError:
                r.problems.append(f"{where}: is not a usable Ed25519 public key")
                continue
            keys[kid] = key
        if not keys_raw:
            r.problems.append("credentials.keys: at least one trusted key is required")
    if len(r.problems) > before:
        return None
    return CredentialsConfig(keys=keys, **values)


def load_config(path: str | Path) -> Config:
    """Read and check a config file; raise ConfigError listing every problem."""
    return parse_config(read_config_file(path), source_path=Path(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The file's TOML, parsed but not yet checked; ConfigError when it cannot be read or parsed."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read ({exc})"]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: not valid TOML ({exc})"]) from None
    return doc


def load_mqtt_credentials(mqtt: MqttConfig) -> MqttCredentials:
    """Load every file the [mqtt] section names, exactly as the daemon uses them.

    Raises ConfigError naming each key whose file is missing, unreadable or not what it should be.
    `doorctl check-config` calls this, and so does the daemon, which then runs offline with the
    `cloud_config` alarm instead of dying over a bad certificate. (The pass service loads its own
    [mqtt] with the same function, from the wire.)
    """
    try:
        return load_credentials(tls=mqtt.tls, ca_file=mqtt.ca_file, cert_file=mqtt.cert_file,
                                key_file=mqtt.key_file, username=mqtt.username,
                                password_file=mqtt.password_file)
    except CredentialProblems as exc:
        raise ConfigError(exc.problems) from None
