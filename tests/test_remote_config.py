"""The door's checks of a remote configuration (contract §11), and the technician's file edited key by
key (`doorctl enroll`): every refusal named, the file's own rules applied, comments kept."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from controller.config import ConfigError, parse_config
from controller.config_edit import EditProblem, edit
from controller.remote_config import Checked, Refused, RemoteConfig, check, load_effective, overridden
from tests.helpers import NOW, PRIVATE, PUBLIC_B64, config_doc, toml_text
from wire.codes import config_door, mint_config
from wire.fleet import ConfigRefusal


def document(settings: dict[str, dict[str, Any]], *, version: int = 1, door: str = "shinjuku-3/main",
             kid: str = "k1", issuer: str = "officepass") -> str:
    return mint_config(PRIVATE[kid], kid=kid, issuer=issuer, iat=NOW, version=version, door=door,
                       settings=settings)


def _file(tmp_path: Path, **sections: Any) -> tuple[Path, dict[str, Any]]:
    doc = config_doc(storage={"path": str(tmp_path / "doorctl.db")}, **sections)
    doc["credentials"] = {"keys": {"k1": PUBLIC_B64["k1"]}}
    path = tmp_path / "doorctl.toml"
    path.write_text(toml_text(doc))
    return path, tomllib.loads(path.read_text())


def _check(tmp_path: Path, text: str, applied: int | None = None) -> Checked | Refused:
    path, doc = _file(tmp_path)
    return check(text, doc, parse_config(doc, source_path=path), applied, path)


def test_a_good_document_gives_the_merged_configuration(tmp_path: Path) -> None:
    result = _check(tmp_path, document({"door": {"seats": 3}, "lock": {"unlock_seconds": 4}}))
    assert isinstance(result, Checked)
    assert result.config.door.seats == 3 and result.config.lock.unlock_seconds == 4
    assert result.config.lock.relay_pin == "GPIO17"  # the file's wiring, untouched


@pytest.mark.parametrize(("text", "reason", "detail"), [
    ("OPC1:garbage", ConfigRefusal.MALFORMED, "base45"),
    (document({"door": {"seats": 3}}, kid="k2"), ConfigRefusal.MALFORMED, "not trusted"),
    (document({"door": {"seats": 3}}, issuer="someone"), ConfigRefusal.MALFORMED, "issuer"),
    (document({"door": {"seats": 3}}, door="shinjuku-3/side"), ConfigRefusal.WRONG_DOOR, "shinjuku-3/side"),
    (document({"lock": {"relay_pin": "GPIO5"}}), ConfigRefusal.NOT_REMOTE, "lock.relay_pin"),
    (document({"mqtt": {"host": "evil"}}), ConfigRefusal.NOT_REMOTE, "mqtt: not a section"),
    (document({"door": {"store": "elsewhere"}}), ConfigRefusal.NOT_REMOTE, "door.store"),
    (document({"door": {"seats": -1}}), ConfigRefusal.INVALID, "door.seats"),
    (document({"lock": {"unlock_seconds": 50}}), ConfigRefusal.INVALID, "must not exceed"),
    (document({"door": {"seats": "three"}}), ConfigRefusal.INVALID, "door.seats: must be an integer"),
])
def test_a_document_is_refused_naming_why(tmp_path: Path, text: str, reason: ConfigRefusal,
                                          detail: str) -> None:
    result = _check(tmp_path, text)
    assert isinstance(result, Refused) and result.reason is reason, result
    assert detail in result.detail


def test_an_older_or_equal_version_is_refused(tmp_path: Path) -> None:
    result = _check(tmp_path, document({"door": {"seats": 3}}, version=4), applied=4)
    assert isinstance(result, Refused) and result.reason is ConfigRefusal.NOT_NEWER


def test_kept_document_survives_a_restart_and_a_file_edit_that_breaks_it_is_named(tmp_path: Path) -> None:
    path, _ = _file(tmp_path)
    remote = RemoteConfig(load_effective(path))
    remote.offered(document({"lock": {"unlock_seconds": 10}}, version=2).encode())
    assert remote.pending is not None and remote.refused is None
    assert remote.keep_pending() == 2
    effective = load_effective(path)
    assert effective.document is not None and effective.config.lock.unlock_seconds == 10
    assert overridden(effective) == ["lock.unlock_seconds = 10 from the service (the file leaves it to "
                                     "the default)"]
    # The retained copy of what the door holds, at every reconnect: nothing to say.
    again = RemoteConfig(effective)
    again.offered(document({"lock": {"unlock_seconds": 10}}, version=2).encode())
    assert again.pending is None and again.refused is None
    # The technician lowers the relay bound in the file: the kept document no longer fits.
    path.write_text(path.read_text().replace('relay_pin = "GPIO17"',
                                             'relay_pin = "GPIO17"\nmax_unlock_seconds = 5'))
    effective = load_effective(path)
    assert effective.document is None and effective.config.lock.max_unlock_seconds == 5
    assert effective.problem is not None and "no longer fits the file" in effective.problem


def test_only_update_keys_apply_live(tmp_path: Path) -> None:
    path, _ = _file(tmp_path)
    remote = RemoteConfig(load_effective(path))
    remote.offered(document({"update": {"release": "0.2.0"}}).encode())
    assert remote.pending is not None and remote.live()
    assert remote.applied_live().update.release == "0.2.0" and remote.applied == 1
    remote.offered(document({"update": {"release": "0.2.0"}, "door": {"seats": 4}}, version=2).encode())
    assert remote.pending is not None and not remote.live()


TECHNICIAN = '''# pins checked 2026-11-30 by K.
[door]
store = "old"                # the store's id
name = "main"

[lock]
relay_pin = "GPIO17"          # relay board channel 1
exit_button_pin = "GPIO22"

[credentials.keys]
# the service's key
k0 = "AAAA"

[[reader]]
name = "front"   # by the glass door
type = "camera"
side = "entry"
source = "/dev/video0"
'''


def test_the_file_keeps_every_other_line_and_comment() -> None:
    edited = edit(TECHNICIAN, {"door": {"store": "shinjuku-3"}, "mqtt": {"host": "broker", "port": 8883}},
                  whole={"credentials.keys": {"k1": "BBBB"}})
    doc = tomllib.loads(edited)
    assert doc["door"] == {"store": "shinjuku-3", "name": "main"}
    assert doc["credentials"]["keys"] == {"k1": "BBBB"}
    assert doc["mqtt"] == {"host": "broker", "port": 8883}
    assert 'store = "shinjuku-3"                # the store\'s id' in edited
    for line in ("# pins checked 2026-11-30 by K.", 'relay_pin = "GPIO17"          # relay board channel 1',
                 "# the service's key", 'name = "front"   # by the glass door', 'source = "/dev/video0"'):
        assert line in edited
    assert "k0" not in edited


def test_an_edit_that_cannot_take_says_so() -> None:
    with pytest.raises(EditProblem):
        edit("[door\nbroken", {"door": {"store": "x"}})
    with pytest.raises(EditProblem):
        edit(TECHNICIAN, {"door": {"store": float("nan")}})


def test_config_door_names() -> None:
    assert config_door("shinjuku-3", "main") == "shinjuku-3/main"
    with pytest.raises(ConfigError):
        parse_config({**config_doc(), "update": {"release": "no spaces allowed"}})
