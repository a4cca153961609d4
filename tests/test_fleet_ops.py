"""Fleet operations (contract §11, issue 21): enrollment and remote configuration, with the real parts.

`officepass ca init` and `officepass broker-config` write the closed broker a real mosquitto runs;
`officepass serve` runs in its own process with a `[broker]` section whose `reload` sends that
mosquitto SIGHUP; `officepass door add` prints the technician's line; `doorctl enroll` runs it
against the service over HTTP on loopback and writes the door's files; `doorctl run --sim` then
comes online with the identity it was given. A configuration changed with `officepass door config`
reaches the door retained and signed; the door applies it at a quiet moment by stopping to start
again (systemd's Restart=always; here the test starts it again, as systemd would), and reports
`config_version` or the refusal's reason in its status.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hwsim.broker import Broker, Recorder, free_port
from officepass.ca import CA_CERT
from officepass.db import engine_for, migrate, sessions
from officepass.enrollment import add_door
from officepass.keys import KeyRing
from tests.helpers import ROOT, config_doc, toml_text
from tests.procs import BoardProcess, DoorProcess
from tests.rig import wait_for
from wire.acl import door_username
from wire.topics import Topics

TOPICS = Topics()
LOCK_SECTION = ('[lock]\nrelay_pin = "GPIO17"          # the relay board, channel 1\n'
                'exit_button_pin = "GPIO22"   # the green button inside\n')


def officepass(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "officepass.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False)


def doorctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False)


@dataclass
class Operator:
    """The operator's side: settings, database, keys, the closed broker and `officepass serve`."""

    root: Path
    settings: Path
    database: str
    broker: Broker
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    def door_add(self, store: str, door: str) -> str:
        done = officepass("door", "add", "--config", str(self.settings), store, door)
        assert done.returncode == 0, done.stderr
        line = next(x for x in done.stdout.splitlines() if "doorctl enroll" in x)
        assert f"--service {self.url}" in line
        return line.split()[-1]

    def watcher(self) -> Recorder:
        password = (self.broker_dir / "secrets" / "observer_watcher.password").read_text().strip()
        import ssl
        return Recorder(self.broker.port, topic=f"{TOPICS.prefix}/#", client_id="observer/watcher",
                        tls=ssl.create_default_context(cafile=str(self.root / "ca" / CA_CERT)),
                        username="observer/watcher", password=password)

    def log(self) -> str:
        return (self.root / "serve.log").read_text()


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    root = tmp_path / "operator"
    root.mkdir()
    database = f"sqlite:///{root / 'officepass.db'}"
    migrate(database)
    KeyRing(root / "keys").new("k1")
    broker_port, http_port = free_port(), free_port()
    base = (f'[service]\nlisten = "127.0.0.1:{http_port}"\nbase_url = "http://127.0.0.1:{http_port}"\n'
            f'database = "{database}"\nkeys = "{root / "keys"}"\nsecret_file = "{root / "secret"}"\n'
            f'releases = "{root / "releases"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nca_file = "{root / "ca" / CA_CERT}"\n'
            f'username = "svc/a"\npassword_file = "{root / "broker" / "secrets" / "svc_a.password"}"\n'
            f'[broker]\nlisten = "127.0.0.1:{broker_port}"\nca_dir = "{root / "ca"}"\n'
            f'config_dir = "{root / "broker"}"\nobservers = ["watcher"]\ndoor_host = "127.0.0.1"\n')
    settings = root / "serve.toml"
    settings.write_text(base)
    for step in (("ca", "init"), ("broker-config",)):
        done = officepass(*step, "--config", str(settings))
        assert done.returncode == 0, done.stderr
    broker = Broker(root, port=broker_port, conf=root / "broker" / "mosquitto.conf")
    assert broker.proc is not None
    # The broker reads new passwords and rules on SIGHUP, dropping nobody (as `systemctl reload`).
    settings.write_text(base + f'reload = ["kill", "-HUP", "{broker.proc.pid}"]\n')
    proc = subprocess.Popen([sys.executable, "-m", "officepass.cli", "serve", "--config", str(settings)],
                            cwd=ROOT, stdout=(root / "serve.log").open("ab"), stderr=subprocess.STDOUT)
    op = Operator(root, settings, database, broker, http_port, proc)
    assert wait_for(lambda: _answers(op.url), timeout=30), op.log()[-2000:]
    try:
        yield op
    finally:
        proc.terminate()
        proc.wait(15)
        broker.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def new_pi(tmp_path: Path, name: str = "pi") -> Path:
    """A Pi after install-pi.sh: the technician's file with wiring, comments, no identity yet."""
    pi = tmp_path / name
    pi.mkdir()
    doc = config_doc(storage={"path": str(pi / "doorctl.db")})
    doc.pop("lock")
    text = ("# The technician's notes: relay on the left DIN rail.\n" + toml_text(doc) + "\n" + LOCK_SECTION
            + '\n[[reader]]\nname = "inside"\ntype = "serial"\nside = "exit"\nport = "/dev/ttyUSB9"\n')
    config = pi / "doorctl.toml"
    config.write_text(text)
    config.chmod(0o640)
    return config


def _status(watcher: Recorder, store: str, door: str) -> dict[str, Any] | None:
    for topic, payload, _ in reversed(watcher.messages):
        if topic == TOPICS.status(store, door) and payload:
            body = json.loads(payload)
            return body if body.get("online") else None
    return None


def test_enroll_then_online_then_codes_refused_then_replaced(operator: Operator, tmp_path: Path) -> None:
    code = operator.door_add("shop-1", "main")
    config = new_pi(tmp_path)
    before = config.read_text()

    bad = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart", "XXXX-1234")
    assert bad.returncode == 2 and "not an enrollment code" in bad.stderr
    unknown = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart",
                      "ABCD-EFGH-JKMN-PQRS-TVWX")
    assert unknown.returncode == 2 and "unknown_code" in unknown.stderr
    assert "Nothing was written" in unknown.stderr
    remote = doorctl("enroll", "--config", str(config), "--service", "http://pass.example", "--no-restart",
                     code)
    assert remote.returncode == 2 and "plain http only to this machine" in remote.stderr
    assert config.read_text() == before and not (config.parent / "door.key").exists()

    done = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart", code.lower())
    assert done.returncode == 0, done.stderr
    assert "enrolled as shop-1/main (the store's controller)" in done.stdout
    text = config.read_text()
    # The technician's wiring and notes are as they were, byte for byte.
    assert LOCK_SECTION in text and "# The technician's notes" in text and "/dev/ttyUSB9" in text
    for name, mode in (("door.key", 0o600), ("broker.password", 0o600), ("door.pem", 0o644)):
        assert (config.parent / name).stat().st_mode & 0o777 == mode, name
    assert oct(config.stat().st_mode & 0o777) == oct(0o640)
    checked = doorctl("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stdout
    public = {k.kid: k.public_b64 for k in KeyRing(operator.root / "keys").public_keys()}
    assert f'k1 = "{public["k1"]}"' in text and 'username = "door/shop-1/main"' in text

    again = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart", code)
    assert again.returncode == 2 and "used_code" in again.stderr
    assert "enrolled shop-1/main already" in again.stderr
    assert config.read_text() == text

    # Who enrolled what, and when, from where, with which key.
    with sqlite3.connect(operator.root / "officepass.db") as db:
        rows = db.execute("SELECT store, door, created_by, used, used_from, key_sha256 "
                          "FROM enrollments").fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("shop-1", "main") and rows[0][2].startswith("cli:")
    assert rows[0][3] is not None and rows[0][4] == "127.0.0.1" and len(rows[0][5]) == 64

    watcher = operator.watcher()
    board = BoardProcess(config, config.parent / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        door.wait_line("connected to broker", timeout=30)
        assert wait_for(lambda: _status(watcher, "shop-1", "main") is not None, timeout=15)
        # The service took the door's status: the console lists it online.
        with sessions(engine_for(operator.database))() as db:
            from officepass.models import DoorRecord
            assert wait_for(lambda: ((r := db.get(DoorRecord, ("shop-1", "main"))) is not None and r.online)
                            or db.expire_all(), timeout=15)
    finally:
        door.stop()
        board.close()

    # A replaced Pi: a new code for the same door; the old identity's password stops working.
    old_password = (config.parent / "broker.password").read_text().strip()
    replacement = new_pi(tmp_path, "pi2")
    done = doorctl("enroll", "--config", str(replacement), "--service", operator.url, "--no-restart",
                   operator.door_add("shop-1", "main"))
    assert done.returncode == 0, done.stderr
    assert (replacement.parent / "broker.password").read_text().strip() != old_password
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    refused: list[Any] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=door_username("shop-1", "main"), protocol=mqtt.MQTTv5)
    client.tls_set_context(ssl.create_default_context(cafile=str(operator.root / "ca" / CA_CERT)))
    client.username_pw_set(door_username("shop-1", "main"), old_password)
    client.on_connect = lambda c, u, f, reason, p: refused.append(reason)
    client.connect("127.0.0.1", operator.broker.port)
    client.loop_start()
    try:
        assert wait_for(lambda: refused, timeout=10)
        assert refused[0].is_failure, "the replaced Pi's identity still connects"
    finally:
        client.loop_stop()
    with sqlite3.connect(operator.root / "officepass.db") as db:
        identities = db.execute("SELECT revoked FROM door_identities ORDER BY id").fetchall()
    assert len(identities) == 2 and identities[0][0] is not None and identities[1][0] is None


def test_expired_code_is_refused(operator: Operator, tmp_path: Path) -> None:
    with sessions(engine_for(operator.database)).begin() as db:
        made = add_door(db, "shop-2", "main", by="test", now=datetime.now(UTC) - timedelta(hours=25))
    config = new_pi(tmp_path)
    before = config.read_text()
    done = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart", made.code)
    assert done.returncode == 2 and "expired_code" in done.stderr and "codes last 24 h" in done.stderr
    assert config.read_text() == before


def _enrolled_door(operator: Operator, tmp_path: Path, store: str) -> Path:
    config = new_pi(tmp_path)
    done = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart",
                   operator.door_add(store, "main"))
    assert done.returncode == 0, done.stderr
    return config


def _seats(watcher: Recorder, store: str) -> dict[str, Any] | None:
    for topic, payload, _ in reversed(watcher.messages):
        if topic == TOPICS.seats(store) and payload:
            return dict(json.loads(payload))
    return None


def test_remote_config_applied_at_a_quiet_moment_and_a_bad_one_refused(operator: Operator,
                                                                         tmp_path: Path) -> None:
    config = _enrolled_door(operator, tmp_path, "shop-3")
    watcher = operator.watcher()
    board = BoardProcess(config, config.parent / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    door.wait_line("connected to broker", timeout=30)
    try:
        assert wait_for(lambda: (_seats(watcher, "shop-3") or {}).get("capacity") == 2, timeout=15)
        # Not a key a document may set: refused by the service, naming it.
        wiring = officepass("door", "config", "--config", str(operator.settings), "shop-3", "main",
                            "--set", "lock.relay_pin=GPIO5")
        assert wiring.returncode == 2 and "lock.relay_pin: stays in the door's own file" in wiring.stderr

        # The member holds the door open (relay on): the change waits for the relay to go off.
        board.press()
        assert wait_for(board.relay, timeout=5)
        changed = officepass("door", "config", "--config", str(operator.settings), "shop-3", "main",
                             "--set", "door.seats=3", "--set", "lock.unlock_seconds=4")
        assert changed.returncode == 0, changed.stderr
        assert door.popen.wait(60) == 0  # stopped to start again on the new configuration
        assert "configuration v1 kept" in door.output() and "restarting to run with it" in door.output()
        spans = board.relay_spans()
        assert spans and all(off is not None for _, off in spans), "the relay was on at the restart"
        applied_at = time.monotonic()
        door = DoorProcess(config, board.socket_path)  # systemd's Restart=always
        door.wait_line("connected to broker", timeout=30)
        assert wait_for(lambda: (_seats(watcher, "shop-3") or {}).get("capacity") == 3, timeout=15)
        assert wait_for(lambda: (_status(watcher, "shop-3", "main") or {}).get("config_version") == 1,
                        timeout=15)
        assert not [s for s in board.relay_spans() if s[0] >= applied_at - 1e-3 and s[1] is None]

        # Kept across a restart without the broker's help (the file in the state directory).
        assert (config.parent / "remote-config.opc").read_text().startswith("OPC1:")
        status = doorctl("status", "--config", str(config), "--json")
        assert json.loads(status.stdout)["config_version"] == 1
        doctor = doorctl("doctor", "--config", str(config))
        assert "door.seats = 3 from the service (the file leaves it to the default)" in doctor.stdout, \
            doctor.stdout

        # A value the door's own rules refuse (unlock longer than the relay's bound): not applied, the
        # reason in the status, the door runs on as it was (no restart).
        bad = officepass("door", "config", "--config", str(operator.settings), "shop-3", "main",
                         "--set", "lock.unlock_seconds=50")
        assert bad.returncode == 0, bad.stderr
        assert wait_for(lambda: "lock.unlock_seconds" in str((_status(watcher, "shop-3", "main") or {})
                                                             .get("config_refused")), timeout=20)
        refused = _status(watcher, "shop-3", "main") or {}
        assert refused["config_version"] == 1 and refused["config_refused"].startswith("v2 invalid")
        assert door.popen.poll() is None
    finally:
        door.stop()
        board.close()


def _console(operator: Operator) -> httpx.Client:
    from officepass.members import add_member

    with sessions(engine_for(operator.database)).begin() as db:
        add_member(db, "ops", "Operator", "operator password", role="operator")
    client = httpx.Client(base_url=operator.url, timeout=15)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"member": "ops", "password": "operator password", "csrf": token.group(1),
                                "next": "/console"})
    return client


def _csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, path
    return found.group(1)


def test_console_adds_a_door_and_publishes_its_configuration(operator: Operator, tmp_path: Path) -> None:
    console = _console(operator)
    page = console.post("/console/doors", data={"store": "shop-4", "door": "main",
                                                "csrf": _csrf(console, "/console")})
    assert page.status_code == 200, page.text
    command = re.search(r"<pre data-enroll-command>(.*?)</pre>", page.text)
    assert command and f"--service {operator.url} " in command.group(1)
    config = new_pi(tmp_path)
    done = doorctl("enroll", "--config", str(config), "--service", operator.url, "--no-restart",
                   command.group(1).split()[-1])
    assert done.returncode == 0, done.stderr
    forged = console.post("/console/doors/shop-4/main/config", data={"door.seats": "5", "csrf": "forged"})
    assert forged.status_code == 403

    watcher = operator.watcher()
    board = BoardProcess(config, config.parent / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        door.wait_line("connected to broker", timeout=30)
        door_page = "/console/doors/shop-4/main"
        assert wait_for(lambda: "the door&#39;s file alone" in console.get(door_page).text, timeout=15)
        wrong = console.post(f"{door_page}/config", data={"door.seats": "many",
                                                           "csrf": _csrf(console, door_page)})
        assert wrong.status_code == 400 and "door.seats" in wrong.text
        saved = console.post(f"{door_page}/config", follow_redirects=False,
                             data={"door.seats": "5", "csrf": _csrf(console, door_page)})
        assert saved.status_code == 303
        assert door.popen.wait(60) == 0
        door = DoorProcess(config, board.socket_path)
        door.wait_line("connected to broker", timeout=30)
        assert wait_for(lambda: (_seats(watcher, "shop-4") or {}).get("capacity") == 5, timeout=15)
        assert wait_for(lambda: "v1 from the service" in console.get(door_page).text, timeout=15)
        shown = console.get(door_page).text
        assert 'data-config="1"' in shown and "used " in shown and 'value="5"' in shown
    finally:
        door.stop()
        board.close()


def test_a_rollout_is_applied_live_and_asks_the_update_agent(operator: Operator, tmp_path: Path) -> None:
    """`update.release` changes nothing the door runs on: applied without a restart; the daemon drops
    its request for the update agent and reports it (no agent here: it stays asked)."""
    config = _enrolled_door(operator, tmp_path, "shop-5")
    watcher = operator.watcher()
    board = BoardProcess(config, config.parent / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        door.wait_line("connected to broker", timeout=30)
        done = officepass("door", "config", "--config", str(operator.settings), "shop-5", "main",
                          "--set", "update.release=9.9.9")
        assert done.returncode == 0, done.stderr
        assert wait_for(lambda: (_status(watcher, "shop-5", "main") or {}).get("config_version") == 1,
                        timeout=20)
        status = _status(watcher, "shop-5", "main") or {}
        assert status["update"] == {"state": "downloading", "version": "9.9.9",
                                    "reason": "asked the update agent"}
        request = json.loads((config.parent / "update" / "install.request").read_text())
        assert request == {"version": "9.9.9"}
        assert door.popen.poll() is None and "no restart" in door.output()
    finally:
        door.stop()
        board.close()


@pytest.mark.slow
def test_update_agent_installs_a_signed_release_and_refuses_a_tampered_one(operator: Operator,
                                                                             tmp_path: Path) -> None:
    """The agent's install half against a real service: manifest signature, file hashes, a venv made
    from the release's files alone. (The switch, health watch and rollback need systemd: make pi-check.)"""
    from controller.update_agent import Agent, Places, UpdateFailed, door_target
    from controller.updates import STATE_FILE, AgentState
    from wire.fleet import UpdateState

    target = door_target()
    published = officepass("release", "publish", "--config", str(operator.settings), "--version", "0.2.0",
                           "--target", target, timeout=600)
    assert published.returncode == 0, published.stderr
    config = _enrolled_door(operator, tmp_path, "shop-6")
    places = Places(opt=tmp_path / "opt", state_dir=config.parent, cache=tmp_path / "cache")
    agent = Agent(str(config), places)
    venv = agent.install("0.2.0")
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import controller, wire; "
                              "print(controller.__version__)"], capture_output=True, text=True, check=True,
                             cwd=tmp_path)
    assert version.stdout.strip() == "0.2.0"
    state = AgentState.read(places.update_dir / STATE_FILE)
    assert state is not None and state.state is UpdateState.WAITING_QUIET and state.version == "0.2.0"

    # A file changed on the way (here: on the service's disk) is refused by its signed hash.
    published = officepass("release", "publish", "--config", str(operator.settings), "--version", "0.2.1",
                           "--target", target, timeout=600)
    assert published.returncode == 0, published.stderr
    wheel = next((operator.root / "releases" / "0.2.1").glob("doorctl-0.2.1-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(UpdateFailed, match="not the file the manifest signed"):
        agent.install("0.2.1")
    assert not (places.opt / "releases" / "0.2.1").exists()

    # A door that does not trust the service's key refuses the manifest.
    stranger = tmp_path / "stranger.toml"
    stranger.write_text(re.sub(r'(?m)^k1 = ".*"$', f'k1 = "{_other_key()}"', config.read_text()))
    with pytest.raises(UpdateFailed, match="manifest refused: bad signature"):
        Agent(str(stranger), places).install("0.2.0")


def _other_key() -> str:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)).decode()
