"""Strict configuration: every problem named by key, all at once; every shipped file loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config, parse_config
from tests.helpers import ROOT, config_doc, toml_text
from tests.procs import doorctl


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.door.store
    assert config.credentials.keys


def test_example_documents_every_key() -> None:
    from controller import config as c

    text = (ROOT / "config" / "example.toml").read_text()
    keys = [*c.DOOR_FIELDS, *c.LOCK_FIELDS, *c.CREDENTIAL_FIELDS, *c.MQTT_FIELDS, *c.STORAGE_FIELDS,
            *c.READER_COMMON, *c.READER_BY_TYPE["camera"], *c.READER_BY_TYPE["serial"]]
    for key in keys:
        assert f"\n{key} = " in text, f"config/example.toml does not document {key}"


def test_pins_are_stored_by_their_gpio_name() -> None:
    config = parse_config(config_doc(lock={"relay_pin": "BOARD11", "exit_button_pin": "BCM22"}))
    assert (config.lock.relay_pin, config.lock.exit_button_pin) == ("GPIO17", "GPIO22")


def test_defaults() -> None:
    config = parse_config(config_doc())
    assert config.door.seats == 2
    assert config.door.session_limit_minutes == 120
    assert config.door.auto_checkout_after_minutes == 30
    assert config.lock.unlock_seconds == 5 and config.lock.max_unlock_seconds == 15
    assert config.lock.relay_active_high is True and config.lock.door_held_seconds == 30
    assert config.credentials.issuer == "officepass"
    assert (config.credentials.max_clock_skew_seconds, config.credentials.max_code_ttl_seconds,
            config.credentials.max_command_ttl_seconds) == (60, 300, 60)
    assert config.credentials.command_clock_skew_seconds == 5
    assert config.credentials.commands_need_synced_clock is True
    assert config.credentials.max_revoked_members == 100_000
    assert config.mqtt is None
    assert config.storage.path == "doorctl.db"


def test_mqtt_port_default_follows_tls() -> None:
    assert parse_config(config_doc(mqtt={"host": "b"})).mqtt.port == 8883  # type: ignore[union-attr]
    assert parse_config(config_doc(mqtt={"host": "b", "tls": False})).mqtt.port == 1883  # type: ignore[union-attr]


def _problems(**overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(config_doc(**overrides))
    return err.value.problems


def test_every_problem_reported_at_once_with_its_key() -> None:
    problems = _problems(
        door={"store": "s", "seats": "two", "colour": "red"},
        lock={"relay_pin": "pin17", "unlock_seconds": 20, "max_unlock_seconds": 10},
        reader=[{"name": "a", "type": "camera", "side": "front"}, {"name": "a", "type": "serial",
                                                                  "side": "exit", "port": "/dev/x",
                                                                  "source": 1}],
        credentials={"keys": {"k1": "not base64!"}, "issuer": 5},
        mqtt={"port": 99999, "cert_file": "/c.pem"},
        extra={"x": 1},
    )
    text = "\n".join(problems)
    for key in ("door.name: required", "door.seats: must be an integer", "door.colour: unknown key",
                "lock.relay_pin: 'pin17' is not a pin gpiozero knows", "lock.unlock_seconds: must not exceed",
                "reader[0].side: must be one of", "reader[0].source: required",
                "reader[1].name: reader name 'a' is used twice", "reader[1].source: unknown key",
                "credentials.keys.k1: is not valid base64", "credentials.issuer: must be a string",
                "mqtt.host: required", "mqtt.port: must be at most", "mqtt.cert_file: cert_file and key_file",
                "extra: unknown section"):
        assert key in text, f"missing {key!r} in:\n{text}"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"door": {"store": "s", "name": "n", "seats": True}}, "door.seats: must be an integer"),
        ({"door": {"store": "s", "name": "n", "session_limit_minutes": 0}}, "door.session_limit_minutes"),
        ({"door": {"store": "s", "name": "n", "auto_checkout_after_minutes": -1}},
         "door.auto_checkout_after_minutes"),
        ({"door": {"store": "bad store!", "name": "n"}}, "door.store"),
        ({"lock": {"relay_pin": "GPIO17", "door_sensor_pin": "GPIO17"}},
         "lock.door_sensor_pin: GPIO17 is already used by lock.relay_pin"),
        # Aliases of one GPIO are one pin (BCM17 = BOARD11 = J8:11 = GPIO17).
        ({"lock": {"relay_pin": "GPIO17", "exit_button_pin": "BCM17"}},
         "lock.exit_button_pin: GPIO17 is already used by lock.relay_pin"),
        ({"lock": {"relay_pin": "BOARD11", "fire_alarm_pin": "J8:11"}},
         "lock.fire_alarm_pin: GPIO17 is already used by lock.relay_pin"),
        ({"lock": {"relay_pin": "GPIO99"}}, "lock.relay_pin: 'GPIO99' is not a pin gpiozero knows"),
        ({"lock": {"relay_pin": "BOARD1"}}, "lock.relay_pin: 'BOARD1' is header pin 3V3, not a GPIO"),
        ({"lock": {"relay_pin": "GPIO17", "door_sensor_pin": "BOARD6"}}, "lock.door_sensor_pin: 'BOARD6' is "
         "header pin GND"),
        # Not a number a timer can use.
        ({"lock": {"relay_pin": "GPIO17", "max_unlock_seconds": float("nan")}},
         "lock.max_unlock_seconds: must be a finite number"),
        ({"lock": {"relay_pin": "GPIO17", "unlock_seconds": float("nan")}},
         "lock.unlock_seconds: must be a finite number"),
        ({"lock": {"relay_pin": "GPIO17", "door_held_seconds": float("inf")}},
         "lock.door_held_seconds: must be a finite number"),
        ({"lock": {"relay_pin": "GPIO17", "unlock_seconds": 10.0, "max_unlock_seconds": 8}},
         "lock.unlock_seconds: must not exceed lock.max_unlock_seconds"),
        ({"credentials": {"keys": {"k1": "hvIkyuindLwdofySPU81ayCX0dyGZ9TWywtBmUV59fg="},
                          "command_clock_skew_seconds": 600}}, "credentials.command_clock_skew_seconds"),
        ({"lock": {"relay_pin": "GPIO17", "relay_active_high": "yes"}}, "lock.relay_active_high"),
        ({"lock": {"relay_pin": "GPIO17", "max_unlock_seconds": 0}}, "lock.max_unlock_seconds"),
        ({"lock": {}}, "lock.relay_pin: required key is missing"),
        ({"credentials": {"keys": {}}}, "credentials.keys: at least one"),
        ({"credentials": {}}, "credentials.keys: required"),
        ({"credentials": {"keys": {"k1": "AAAA"}}}, "credentials.keys.k1: must decode to a 32-byte"),
        ({"credentials": {"keys": {"x" * 17: "hvIkyuindLwdofySPU81ayCX0dyGZ9TWywtBmUV59fg="}}},
         "1-16 bytes"),
        ({"reader": [{"name": "s", "type": "serial", "side": "exit", "port": "/d", "baudrate": 1234}]},
         "reader[0].baudrate"),
        ({"reader": [{"name": "s", "type": "laser", "side": "exit"}]}, "reader[0].type: must be one of"),
        ({"reader": {"name": "x"}}, "reader: must be an array"),
        ({"reader": [{"name": "c", "type": "camera", "side": "entry", "source": "picamera2:front"}]},
         "reader[0].source: a Pi camera is 'picamera2'"),
        ({"reader": [{"name": "c", "type": "camera", "side": "entry", "source": "picamera2@1000x480"}]},
         "reader[0].source: the width must be a multiple of 64"),
        ({"reader": [{"name": "c", "type": "camera", "side": "entry", "source": -1}]},
         "reader[0].source: a device index is 0 or more"),
        ({"mqtt": {"host": "h", "topic_prefix": "a/#"}}, "mqtt.topic_prefix"),
        ({"mqtt": {"host": "h", "topic_prefix": "officepass/v1/"}},
         "mqtt.topic_prefix: ends with /: write it without the trailing slash"),
        ({"mqtt": {"host": "h", "topic_prefix": "officepass//v1"}}, "mqtt.topic_prefix: has an empty level"),
        ({"reader": [{"name": "a", "type": "serial", "side": "exit", "port": "/dev/ttyACM0"},
                     {"name": "b", "type": "serial", "side": "entry", "port": "/dev/ttyACM0"}]},
         "reader[1].port: /dev/ttyACM0 is already read by reader 'a'"),
        ({"mqtt": {"host": "h", "password_file": "/p"}}, "mqtt.password_file: needs mqtt.username"),
        ({"storage": {"path": 3}}, "storage.path: must be a string"),
        ({"door": "shinjuku"}, "door: must be a table"),
    ],
)
def test_single_problems(overrides: dict[str, object], expected: str) -> None:
    assert any(expected in p for p in _problems(**overrides)), _problems(**overrides)


def test_missing_sections() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({})
    text = "\n".join(err.value.problems)
    assert "door: required section" in text and "lock: required section" in text
    assert "credentials: required section" in text


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[door\nstore=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(binary)


def test_check_config_cli(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(toml_text(config_doc()))
    ok = doorctl("check-config", "--config", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(toml_text(config_doc(door={"store": "s", "seats": -1}, mqtt={"host": "h",
                                                                                "ca_file": "/nope.pem"})))
    res = doorctl("check-config", "--config", str(bad))
    assert res.returncode == 2
    assert "door.name: required key is missing" in res.stdout
    assert "door.seats: must be at least 0" in res.stdout
    missing_file = tmp_path / "files.toml"
    missing_file.write_text(toml_text(config_doc(mqtt={"host": "h", "ca_file": str(tmp_path / "ca.pem")})))
    res = doorctl("check-config", "--config", str(missing_file))
    assert res.returncode == 2 and "mqtt.ca_file: file" in res.stdout


def test_check_config_loads_the_credential_files_as_the_daemon_does(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("this is not a certificate\n")
    latin1 = tmp_path / "password"
    latin1.write_bytes("pass\xe9".encode("latin-1"))
    doc = config_doc(mqtt={"host": "h", "ca_file": str(not_pem), "username": "door",
                           "password_file": str(latin1)})
    path = tmp_path / "files.toml"
    path.write_text(toml_text(doc))
    res = doorctl("check-config", "--config", str(path))
    assert res.returncode == 2, res.stdout
    assert f"mqtt.ca_file: {not_pem} is not a PEM CA certificate" in res.stdout
    assert f"mqtt.password_file: {latin1} is not UTF-8 text" in res.stdout


def test_run_refuses_a_broken_config_before_touching_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    doc = config_doc(lock={"relay_pin": "GPIO17", "max_unlock_seconds": "long"})
    doc["storage"] = {"path": str(tmp_path / "state" / "doorctl.db")}
    bad.write_text(toml_text(doc))
    res = doorctl("run", "--sim", "--config", str(bad))
    assert res.returncode == 2
    assert "lock.max_unlock_seconds: must be a number" in res.stderr
    assert not (tmp_path / "state").exists(), "the journal must not be created for a broken config"
