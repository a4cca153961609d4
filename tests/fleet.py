"""A fleet under faults (issue 19): simulated doors (`doorctl run --sim`, each with its board process),
service instances (`officepass serve` processes) on one PostgreSQL, the closed broker, members
checking in, stepping out and checking out at every door by codes shown at the scanner and by app
buttons, while the harness restarts the broker, kills a service instance and a door, and cuts a
door's link. Afterwards it compares every door's journal with what the API serves. Used by
tests/test_fleet_faults.py and bench/fleet.py."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hwsim.broker import free_port
from officepass.broker_config import fleet_identities
from officepass.db import engine_for, migrate, sessions
from officepass.keys import KeyRing
from officepass.members import add_member, add_store
from officepass.tokens import new_token
from officepass.webhooks import add_webhook
from tests.closed_broker import ClosedBroker
from tests.helpers import ROOT, config_doc, toml_text
from tests.procs import BoardProcess, DoorProcess
from wire.topics import Topics
from wire.vocab import EventType

PASSWORD = "fleet password"


class LinkCut:
    """A TCP relay between one door and the broker; `cut()` drops its connections and refuses new
    ones until `restore()` (a cable pulled, a router down), the TLS inside untouched."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.restored_at = 0.0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def restore(self) -> None:
        self.restored_at = time.monotonic()
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


@dataclass
class Door:
    store: str
    name: str
    member: str
    dir: Path
    config: Path
    board: BoardProcess
    process: DoorProcess
    link: LinkCut | None = None
    restarts: list[DoorProcess] = field(default_factory=list)

    def journal(self) -> dict[int, str]:
        """seq -> event id, as the door's journal holds them (read beside the running daemon)."""
        with sqlite3.connect(f"file:{self.dir / 'doorctl.db'}?mode=ro", uri=True, timeout=10) as db:
            return dict(db.execute("SELECT seq, id FROM events").fetchall())

    def sessions(self) -> set[str]:
        with sqlite3.connect(f"file:{self.dir / 'doorctl.db'}?mode=ro", uri=True, timeout=10) as db:
            return {row[0] for row in db.execute("SELECT member FROM sessions")}

    def replayed(self) -> int:
        """Events the door sent again because the service asked (its log says so)."""
        found = 0
        for proc in (self.process, *self.restarts):
            for line in proc.lines:
                if m := re.search(r"replayed (\d+) events", line):
                    found += int(m.group(1))
        return found


class Instance:
    """`officepass serve` in a process of its own, with its own broker identity and port."""

    def __init__(self, root: Path, name: str, url: str, closed: ClosedBroker, keys: Path) -> None:
        self.name, self.port = name, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.settings = root / f"officepass-{name}.toml"
        secret = root / "secret"
        self.settings.write_text(
            f'[service]\nlisten = "127.0.0.1:{self.port}"\nbase_url = "{self.base}"\n'
            f'database = "{url}"\nkeys = "{keys}"\nsecret_file = "{secret}"\n'
            "offline_alarm_seconds = 600\n"
            f'[mqtt]\nhost = "127.0.0.1"\nport = {closed.port}\nca_file = "{closed.ca_file}"\n'
            f'username = "svc/{name}"\npassword_file = "{closed.password_file(f"svc/{name}")}"\n')
        self.log = root / f"officepass-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "officepass.cli", "serve", "--config",
                                      str(self.settings)], cwd=ROOT, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                if httpx.get(f"{self.base}/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"officepass {self.name} did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Receiver:
    """A webhook receiver: checks nothing but counts every delivery by webhook-id (the signature is
    checked in tests/test_officepass_api.py)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                outer.arrived[self.headers["webhook-id"]] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Member:
    """One member's phone: logged in to one instance of the app (the other when it is down)."""

    def __init__(self, member: str, door: Door, instances: list[Instance]) -> None:
        self.member, self.door, self.instances = member, door, instances
        self.client: httpx.Client | None = None
        self.at = 0

    def _login(self) -> httpx.Client:
        instance = self.instances[self.at % len(self.instances)]
        client = httpx.Client(base_url=instance.base, timeout=15)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token
        client.post("/login", data={"member": self.member, "password": PASSWORD, "csrf": token.group(1),
                                    "next": "/"})
        return client

    def press(self, act: str) -> bool:
        """The button on the door page; False when no instance answered (it is down) or the door did not."""
        for _ in range(len(self.instances)):
            try:
                if self.client is None:
                    self.client = self._login()
                page = f"/s/{self.door.store}/{self.door.name}"
                token = re.search(r'name="csrf" value="([^"]+)"', self.client.get(page).text)
                if token is None:
                    raise httpx.HTTPError("no form: logged out")
                answer = self.client.post(f"{page}/act", data={"act": act, "csrf": token.group(1)})
                return answer.status_code == 200 and 'class="message refused"' not in answer.text
            except httpx.HTTPError:
                self.client = None
                self.at += 1  # that instance is down: the phone tries the other
        return False


@dataclass
class Fleet:
    root: Path
    url: str
    closed: ClosedBroker
    ring: KeyRing
    doors: list[Door]
    instances: list[Instance]
    receiver: Receiver
    token: str
    stopping: threading.Event = field(default_factory=threading.Event)
    actions: Counter[str] = field(default_factory=Counter)

    # --- the members' day -------------------------------------------------------------------

    def day(self, door: Door, pause: float) -> None:
        """Until told to stop: in (by the scanner or the app), out and back, the two-step checkout."""
        phone = Member(door.member, door, self.instances)
        turn = 0
        while not self.stopping.is_set():
            turn += 1
            if turn % 2:
                code = self.ring.member_code(door.member, stores=[door.store])
                try:
                    door.board.request(op="show", reader="front", text=code)
                    self.actions["code shown"] += 1
                except OSError:
                    self.actions["scanner unreachable"] += 1
            else:
                self.actions["app check_in" if phone.press("check_in") else "app check_in failed"] += 1
            for step in ("exit", "unlock", "checkout_begin", "exit", "checkout"):
                if self.stopping.wait(pause):
                    return
                if step == "exit":
                    try:
                        door.board.press()
                        self.actions["exit button"] += 1
                    except OSError:
                        self.actions["board unreachable"] += 1
                else:
                    self.actions[f"app {step}" if phone.press(step) else f"app {step} failed"] += 1
            if self.stopping.wait(pause):
                return

    # --- faults -----------------------------------------------------------------------------

    def restart_broker(self) -> None:
        self.closed.broker.stop()
        time.sleep(1)  # down for a moment, as a broker's restart is
        self.closed.broker.start()

    def kill_door(self, door: Door) -> None:
        door.process.kill(signal.SIGKILL)
        door.process.popen.wait(10)
        door.restarts.append(door.process)
        door.process = DoorProcess(door.config, door.board.socket_path)

    # --- after healing ----------------------------------------------------------------------

    def api_events(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        after: str | None = None
        with httpx.Client(base_url=self.instances[0].base, timeout=30,
                          headers={"Authorization": f"Bearer {self.token}"}) as api:
            while True:
                params = {"limit": "1000", **({"after": after} if after else {})}
                page = api.get("/api/v1/events", params=params).json()
                seen += page["events"]
                if not page["events"]:
                    return seen
                after = page["next"]

    def api(self, path: str) -> Any:
        return httpx.get(f"{self.instances[0].base}{path}", timeout=30,
                         headers={"Authorization": f"Bearer {self.token}"}).json()

    def differences(self, events: list[dict[str, Any]]) -> list[str]:
        """What still differs between the doors and the service (empty once healed)."""
        problems: list[str] = []
        by_door: dict[tuple[str, str], dict[int, str]] = {}
        for e in events:
            by_door.setdefault((e["store"], e["door"]), {})[e["seq"]] = e["id"]
        for door in self.doors:
            journal, stored = door.journal(), by_door.get((door.store, door.name), {})
            if journal != stored:
                missing = sorted(set(journal) - set(stored))
                extra = len(set(stored) - set(journal))
                problems.append(f"{door.store}: {len(missing)} of {len(journal)} events not in the API "
                                f"(first {missing[:5]}), {extra} the door never had")
        stores = {s["id"]: s for s in self.api("/api/v1/stores")["stores"]}
        for door in self.doors:
            inside = door.sessions()
            served = stores[door.store]
            if {s["member"] for s in served["sessions"]} != inside:
                problems.append(f"{door.store}: sessions {sorted(inside)} at the door, "
                                f"{[s['member'] for s in served['sessions']]} in the service")
            if served["seats"] is None or served["seats"]["occupied"] != len(inside):
                problems.append(f"{door.store}: seats {served['seats']} in the service, {len(inside)} inside")
        doors = {(d["store"], d["door"]): d for d in self.api("/api/v1/doors")["doors"]}
        for door in self.doors:
            served_door = doors.get((door.store, door.name))
            if served_door is None or not served_door["online"]:
                problems.append(f"{door.store}: not online in the service")
            elif served_door["gaps"]:
                problems.append(f"{door.store}: gaps still open {served_door['gaps']}")
        return problems

    def open_alarms(self) -> list[tuple[str, str, str]]:
        from sqlalchemy import select

        from officepass.models import AlarmRecord, DoorRecord

        db = sessions(engine_for(self.url))
        with db() as s:
            standing = {(d.store, d.door): set(d.status.get("alarms", []))
                        for d in s.execute(select(DoorRecord)).scalars()}
            return [(a.store, a.door, a.kind) for a in s.execute(
                select(AlarmRecord).where(AlarmRecord.cleared.is_(None))).scalars()
                if a.kind not in standing.get((a.store, a.door), set())]

    def table(self, events: list[dict[str, Any]]) -> str:
        stored = Counter((e["store"], e["door"]) for e in events)
        seen_twice = Counter(e["id"] for e in events)
        journal_ids = {door.store: door.journal() for door in self.doors}
        lines = [f"{'door':<16}{'journaled':>10}{'stored':>8}{'repaired':>10}{'lost':>6}{'dup. in API':>12}"
                 f"{'webhook dups':>14}"]
        for door in self.doors:
            ids = set(journal_ids[door.store].values())
            lost = sum(last - first + 1 for _, first, last in next(
                (d["lost"] for d in self.api("/api/v1/doors")["doors"] if d["store"] == door.store), []))
            dups = sum(n - 1 for i, n in self.receiver.arrived.items() if i in ids and n > 1)
            api_dups = sum(n - 1 for i, n in seen_twice.items() if i in ids and n > 1)
            name, kept = f"{door.store}/{door.name}", stored[(door.store, door.name)]
            lines.append(f"{name:<16}{len(ids):>10}{kept:>8}{door.replayed():>10}{lost:>6}{api_dups:>12}{dups:>14}")
        return "\n".join(lines)

    def stop(self) -> None:
        self.stopping.set()
        for instance in self.instances:
            instance.stop()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda d: (d.process.stop(), d.board.close()), self.doors))
        for door in self.doors:
            if door.link is not None:
                door.link.close()
        self.receiver.stop()
        self.closed.stop()


def build(root: Path, url: str, doors: int, cut_door: int | None = None) -> Fleet:
    """The fleet: stores s00.. with one door each and one member each, two instances, a webhook for
    every event type and a read token."""
    migrate(url)
    db = sessions(engine_for(url))
    stores = [f"s{n:02d}" for n in range(doors)]
    with db.begin() as s:
        for n, store in enumerate(stores):
            add_store(s, store, f"Store {n}", ["main"])
            add_member(s, f"m-{n:02d}", f"Member {n}", PASSWORD)
        token = new_token(s, "fleet test", "read", created_by="test").token
    receiver = Receiver()
    with db.begin() as s:
        add_webhook(s, receiver.url, [t.value for t in EventType])
    with db() as s:
        identities = fleet_identities(s, Topics(), ["a", "b"], ["watcher"])
    closed = ClosedBroker(root, identities)
    ring = KeyRing(root / "keys")
    key = ring.new("fleet")

    def start_door(n: int) -> Door:
        store = stores[n]
        home = root / store
        home.mkdir()
        mqtt = closed.door_mqtt(store, "main")
        link = None
        if n == cut_door:
            link = LinkCut(closed.port)
            mqtt = {**mqtt, "port": link.port}
        doc = config_doc(door={"store": store, "name": "main", "seats": 2},
                         lock={"relay_pin": "GPIO17", "exit_button_pin": "GPIO22", "unlock_seconds": 0.3},
                         reader=[{"name": "front", "type": "serial", "side": "entry",
                                  "port": "/dev/ttyACM0"}],
                         mqtt=mqtt)
        doc["credentials"] = {"keys": {key.kid: key.public_b64}, "commands_need_synced_clock": False}
        doc["storage"] = {"path": str(home / "doorctl.db")}
        config = home / "door.toml"
        config.write_text(toml_text(doc))
        board = BoardProcess(config, home / "sim.sock")
        return Door(store, "main", f"m-{n:02d}", home, config, board, DoorProcess(config, board.socket_path),
                    link)

    # The service first, as in a deployment: a door's first events find it subscribed.
    instances = [Instance(root, name, url, closed, root / "keys") for name in ("a", "b")]
    with ThreadPoolExecutor(4) as pool:
        started = list(pool.map(start_door, range(doors)))
    return Fleet(root, url, closed, ring, started, instances, receiver, token)


def wait_healed(fleet: Fleet, timeout: float) -> tuple[float, list[str]]:
    """When (monotonic) the service agreed with every door (or the timeout ran out), and what still
    differs then."""
    started = time.monotonic()
    problems: list[str] = ["not looked yet"]
    while time.monotonic() - started < timeout:
        problems = fleet.differences(fleet.api_events())
        if not problems:
            break
        time.sleep(1)
    return time.monotonic(), problems


def run_faults(fleet: Fleet, minutes: float, on_step: Callable[[str], None] = print) -> float:
    """The members' day at every door, and the faults one after another across `minutes`; when
    (monotonic) the last fault ended."""
    workers = [threading.Thread(target=fleet.day, args=(door, 2.5), daemon=True) for door in fleet.doors]
    for worker in workers:
        worker.start()
    span = minutes * 60
    begun = time.monotonic()

    def at(fraction: float) -> None:
        left = begun + span * fraction - time.monotonic()
        if left > 0:
            time.sleep(left)

    cut = next((d for d in fleet.doors if d.link is not None), None)
    steps: list[tuple[float, str, Callable[[], None]]] = [
        (0.10, "broker restarted (1 of 3)", fleet.restart_broker),
        (0.22, "service instance b killed (SIGKILL)", fleet.instances[1].kill),
        (0.30, "service instance b started again", fleet.instances[1].start),
        (0.38, "broker restarted (2 of 3)", fleet.restart_broker),
        (0.48, f"door {fleet.doors[3 % len(fleet.doors)].store} killed (SIGKILL) and started again",
         lambda: fleet.kill_door(fleet.doors[3 % len(fleet.doors)])),
    ]
    if cut is not None and cut.link is not None:
        link = cut.link
        steps.append((0.55, f"door {cut.store}'s link cut for 60 s", link.cut))
    steps.append((0.70, "broker restarted (3 of 3)", fleet.restart_broker))
    last_fault = begun
    for fraction, what, do in steps:
        at(fraction)
        do()
        last_fault = time.monotonic()
        on_step(f"{time.monotonic() - begun:6.1f} s  {what}")
        if "link cut" in what and cut is not None and cut.link is not None:
            threading.Thread(target=_restore_later, args=(cut, 60.0, begun, on_step), daemon=True).start()
    at(1.0)
    fleet.stopping.set()
    for worker in workers:
        worker.join(30)
    if cut is not None and cut.link is not None:
        while not cut.link.open.is_set():
            time.sleep(0.5)
        last_fault = max(last_fault, cut.link.restored_at)
    on_step(f"{time.monotonic() - begun:6.1f} s  the members' day is over; {sum(fleet.actions.values())} "
            f"actions: {json.dumps(dict(sorted(fleet.actions.items())))}")
    return last_fault


def _restore_later(door: Door, seconds: float, begun: float, on_step: Callable[[str], None]) -> None:
    time.sleep(seconds)  # the length of the outage itself, not a wait for something to happen
    assert door.link is not None
    door.link.restore()
    on_step(f"{time.monotonic() - begun:6.1f} s  door {door.store}'s link back")
