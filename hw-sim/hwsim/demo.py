"""`make demo`: a local mosquitto, the door under --sim, the pass service, and a scripted store day.

Everything real but the hardware: `doorctl run --sim` as its own process, codes
rendered into the simulated camera's frames and decoded by the door's pipeline, a
pty for the serial scanner, commands and state over a real broker, and `officepass
serve` (the member app and console) with its own database. The app buttons of the
day go through the service's web pages, as a phone's would. The day ends by itself
in about 70 seconds; in a terminal the door and the app then keep running for a
person to try until Ctrl-C.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwsim.broker import Broker, Recorder, free_port
from hwsim.server import BoardClient
from wire.codes import mint_code
from wire.rules import DEFAULT_PREFIX
from wire.topics import DoorTopics

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".demo"
# TEST-ONLY private key (tests/data/vectors/test-keys.json): the demo plays the member's app.
APP_KEY = "vNAVQunfssqFgpICOrkdEJi15EvvfXeL2JYLw36IiuI="
APP_PUBLIC = "hvIkyuindLwdofySPU81ayCX0dyGZ9TWywtBmUV59fg="
TTY = sys.stdout.isatty()
MEMBERS = {"aiko": "aiko-pass-1234", "ben": "ben-pass-1234", "chika": "chika-pass-1234",
           "demo": "demo-pass-1234"}
OPERATOR = ("operator", "operator-pass-1234")


def member_code(member: str, act: str | None = None) -> str:
    import base64
    import secrets

    now = int(time.time())
    return mint_code(base64.b64decode(APP_KEY), kid="k1", issuer="officepass", member=member, iat=now,
                     exp=now + (30 if act else 120), cti=secrets.token_bytes(16), act=act)


class Demo:
    def __init__(self) -> None:
        shutil.rmtree(STATE, ignore_errors=True)
        STATE.mkdir()
        text = (ROOT / "config" / "demo.toml").read_text()
        doc = tomllib.loads(text)
        self.store, self.door_name = doc["door"]["store"], doc["door"]["name"]
        # The service's address, chosen now: the door's screen shows its URL (contract §8, §9).
        self.service_port = free_port()
        self.service_url = f"http://127.0.0.1:{self.service_port}"
        # The broker as a deployment runs it (contract §4): the service writes its closed
        # configuration (its CA, TLS, an identity for every door, instance and observer, the ACL).
        self.broker_port = free_port()
        self.settings = self._service_settings()
        self.broker = Broker(STATE, port=self.broker_port, conf=STATE / "broker" / "mosquitto.conf")
        # The door's identity and the CA, and the journal under .demo/.
        secrets = STATE / "broker" / "secrets"
        text = text.replace("port = 18830\ntls = false",
                            f'port = {self.broker_port}\ntls = true\nca_file = "{STATE / "ca" / "ca.pem"}"\n'
                            f'username = "door/{self.store}/{self.door_name}"\n'
                            f'password_file = "{secrets / f"door_{self.store}_{self.door_name}.password"}"')
        text = text.replace('path = "../.demo/doorctl.db"', f'path = "{STATE / "doorctl.db"}"')
        text = text.replace('url = "http://127.0.0.1:8080/', f'url = "{self.service_url}/')
        self.config = STATE / "door.toml"
        self.config.write_text(text)
        self.topics = DoorTopics(doc.get("mqtt", {}).get("topic_prefix", DEFAULT_PREFIX), self.store,
                                 self.door_name)
        # The demo's view of the broker: a read-only observer's identity.
        self.cloud = Recorder(self.broker_port, client_id="observer/demo",
                              tls=ssl.create_default_context(cafile=str(STATE / "ca" / "ca.pem")),
                              username="observer/demo",
                              password=(secrets / "observer_demo.password").read_text().strip())
        self.log = (STATE / "door.log").open("w")
        self.door = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "run", "--sim", "--config", str(self.config)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.narration: list[str] = []
        self.started = time.monotonic()
        self.board = self._wait_board()
        self._stop_view = threading.Event()
        self.service = self._start_service()
        self._browsers: dict[str, urllib.request.OpenerDirector] = {}

    # --- the pass service ------------------------------------------------------------------

    def _officepass(self, *args: str, stdin: str = "") -> None:
        subprocess.run([sys.executable, "-m", "officepass.cli", *args], cwd=ROOT, input=stdin, text=True,
                       check=True, capture_output=True)

    def _service_settings(self) -> Path:
        """The service's settings, its database (store, members) and the closed broker's
        configuration, made with the operator's own commands (README: the setup)."""
        keys = STATE / "keys"
        keys.mkdir(mode=0o700)
        fd = os.open(keys / "k1.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(APP_KEY + "\n")
        (keys / "k1.pub").write_text(APP_PUBLIC + "\n")
        (keys / "active").write_text("k1\n")
        database = f"sqlite:///{STATE / 'officepass.db'}"
        settings = STATE / "officepass.toml"
        ca, broker = STATE / "ca", STATE / "broker"
        settings.write_text(
            f'[service]\nlisten = "127.0.0.1:{self.service_port}"\nbase_url = "{self.service_url}"\n'
            f'database = "{database}"\nkeys = "{keys}"\nsecret_file = "{STATE / "session.key"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker_port}\nca_file = "{ca / "ca.pem"}"\n'
            f'username = "svc/demo"\npassword_file = "{broker / "secrets" / "svc_demo.password"}"\n'
            f'[broker]\nlisten = "127.0.0.1:{self.broker_port}"\nca_dir = "{ca}"\ninstances = ["demo"]\n'
            'observers = ["demo"]\n')
        self._officepass("ca", "init", "--config", str(settings))
        self._officepass("db", "upgrade", "--db", database)
        self._officepass("store", "add", self.store, "--name", "Demo store", "--door", self.door_name,
                         "--areas", "1F lounge, meeting booth", "--rules", "Quiet after 20:00",
                         "--db", database)
        for member, password in MEMBERS.items():
            self._officepass("member", "add", member, "--password-stdin", "--db", database,
                             stdin=password + "\n")
        self._officepass("member", "add", OPERATOR[0], "--role", "operator", "--password-stdin",
                         "--db", database, stdin=OPERATOR[1] + "\n")
        self._officepass("broker-config", "--config", str(settings), "--out", str(broker))
        return settings

    def _start_service(self) -> subprocess.Popen[bytes]:
        """`officepass serve` on the demo broker, signing with the TEST-ONLY key the door trusts."""
        log = (STATE / "officepass.log").open("w")
        argv = [sys.executable, "-m", "officepass.cli", "serve", "--config", str(self.settings)]
        service = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if not self.wait_for(self._service_answers, 30):
            raise SystemExit(f"the pass service did not start; see {STATE / 'officepass.log'}")
        return service

    def _service_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.service_url}/login", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _browser(self, member: str) -> urllib.request.OpenerDirector:
        """A logged-in session on the member app, as the member's phone holds one."""
        if member not in self._browsers:
            jar = urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            opener = urllib.request.build_opener(jar)
            self._post(opener, "/login", {"member": member, "password": MEMBERS[member], "next": "/"})
            self._browsers[member] = opener
        return self._browsers[member]

    def _post(self, opener: urllib.request.OpenerDirector, path: str, form: dict[str, str],
              form_page: str | None = None) -> str:
        form_page = form_page or ("/login" if path == "/login" else f"/s/{self.store}/{self.door_name}")
        page = opener.open(f"{self.service_url}{form_page}")
        token = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
        data = urllib.parse.urlencode({**form, "csrf": token.group(1) if token else ""}).encode()
        try:
            with opener.open(f"{self.service_url}{path}", data=data, timeout=10) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:  # the page for a refusal (409) or the trouble screen
            return str(exc.read().decode())

    def _wait_board(self) -> BoardClient:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                client = BoardClient(STATE / "sim.sock")
                client.request(op="state")
                return client
            except (ConnectionError, OSError, ValueError):
                if self.door.poll() is not None:
                    raise SystemExit(f"the door did not start; see {STATE / 'door.log'}") from None
                time.sleep(0.2)
        raise SystemExit("the simulated board did not come up")

    # --- the script's verbs --------------------------------------------------------------

    def say(self, text: str) -> None:
        stamp = f"[{time.monotonic() - self.started:5.1f}s]"
        self.narration.append(f"{stamp} {text}")
        if not TTY:
            print(f"{stamp} {text}", flush=True)

    def show(self, reader: str, member: str, act: str | None = None) -> None:
        self.board.request(op="show", reader=reader, text=member_code(member, act))

    def walk_through(self) -> None:
        """The member pushes the door once it has unlocked (never forcing it)."""
        if not self.wait_for(lambda: bool(self.board.request(op="state")["relay"]), 5):
            return
        time.sleep(0.3)
        self.board.request(op="door", open=True)
        time.sleep(0.8)
        self.board.request(op="door", open=False)

    def app(self, member: str, act: str, scanned: str | None = None) -> None:
        """The member presses a button on the door's page in the app (the service sends the command).
        `scanned`: the door screen's QR the phone scanned first (its page carries the presence code)."""
        page = urllib.parse.urlsplit(scanned) if scanned else None
        form_page = f"{page.path}?{page.query}" if page else None
        pc = urllib.parse.parse_qs(page.query).get("pc", [""])[0] if page else ""
        self._post(self._browser(member), f"/s/{self.store}/{self.door_name}/act",
                   {"act": act, **({"pc": pc} if pc else {})}, form_page)

    def screen_code(self) -> str | None:
        """What the door's screen shows (the simulator's display op): the QR's text, None when hidden."""
        text = self.board.request(op="display").get("text")
        return text if isinstance(text, str) else None

    def wait_for(self, what: Callable[[], bool], timeout: float = 15) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if what():
                return True
            time.sleep(0.1)
        self.say(f"   (still waiting after {timeout:.0f}s)")
        return False

    def events(self) -> list[dict[str, Any]]:
        return self.cloud.json_on(self.topics.events)

    def has_event(self, type_: str, member: str | None, count: int = 1) -> Callable[[], bool]:
        return lambda: sum(1 for e in self.events() if e["type"] == type_ and e["member"] == member) >= count

    # --- the live view -------------------------------------------------------------------

    def view(self) -> str:
        seats = (self.cloud.json_on(self.topics.seats) or [{}])[-1]
        statuses = self.cloud.json_on(self.topics.status)
        status = statuses[-1] if statuses else {}
        board = self.board.request(op="state")
        sessions: dict[str, Any] = {}
        with self.cloud.cond:
            for topic, payload, _ in self.cloud.messages:
                if (member := self.topics.session_member(topic)) is not None:
                    sessions[member] = json.loads(payload) if payload else None
        lines = [
            f"doorctl demo: store {self.store}, door {self.door_name}  "
            f"(closed broker 127.0.0.1:{self.broker.port}, TLS)",
            f"  member app : {self.service_url}/s/{self.store}/{self.door_name}   (log in as demo / "
            f"{MEMBERS['demo']})",
            f"  console    : {self.service_url}/console   ({OPERATOR[0]} / {OPERATOR[1]})",
            "",
            f"  cloud link : {'online' if status.get('online') else 'OFFLINE'}",
            f"  lock       : {status.get('lock', '?'):9}  relay {'ON ' if board['relay'] else 'off'}  "
            f"bolt {board['bolt']}",
            f"  door       : {board['door']}",
            f"  screen     : {self.screen_code() or 'code hidden (offline)'}",
            f"  alarms     : {', '.join(status.get('alarms', [])) or '-'}",
            f"  seats      : {seats.get('symbol', '?')}  {seats.get('available', '?')} of "
            f"{seats.get('capacity', '?')} free",
            "  sessions   : " + (", ".join(
                f"{m} ({s['state']}{', OVERDUE' if s['overdue'] else ''})"
                for m, s in sessions.items() if s) or "-"),
            "",
            "  events (from the broker):",
        ]
        for e in self.events()[-9:]:
            reason = f" ({e['reason']})" if e.get("reason") else ""
            who = e.get("member") or "-"
            lines.append(f"    #{e['seq']:<3} {e['type']:<17} {who:<6} {e['source']}{reason}")
        lines += ["", "  story:"] + [f"    {n}" for n in self.narration[-7:]]
        return "\n".join(lines)

    def _render_loop(self) -> None:
        while not self._stop_view.wait(0.5):
            try:
                screen = self.view()
            except Exception:
                continue
            sys.stdout.write("\x1b[H\x1b[2J" + screen + "\n")
            sys.stdout.flush()

    # --- the day -------------------------------------------------------------------------

    def run(self) -> int:
        if TTY:
            threading.Thread(target=self._render_loop, daemon=True).start()
        else:
            print(f"member app: {self.service_url}/s/{self.store}/{self.door_name} (log in as demo / "
                  f"{MEMBERS['demo']}); console: {self.service_url}/console ({OPERATOR[0]} / {OPERATOR[1]})",
                  flush=True)
        result = 1  # interrupted before the day's end: not a demo that showed everything
        try:
            self.day()
            result = self.summary()
            if TTY:
                self.say("the day is over: the door and the member app keep running for you (Ctrl-C ends)")
                self._stop_view.clear()
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self._stop_view.set()
            for proc in (self.service, self.door):
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
            self.cloud.close()
            self.broker.stop()
        return result

    def day(self) -> None:
        self.say("the door is up; waiting for it on the broker")
        self.wait_for(lambda: any(s.get("online") for s in self.cloud.json_on(self.topics.status)), 20)
        self.wait_for(lambda: self.screen_code() is not None, 15)
        photo = self.screen_code()
        self.say("someone photographs the code on the door's screen (it changes every 10 s)")
        self.say("aiko shows her code to the door camera: check in")
        self.show("front", "aiko")
        self.wait_for(self.has_event("check_in", "aiko"))
        self.walk_through()
        self.say("aiko steps out for a coffee (scanner inside), then comes back (camera)")
        self.show("inside", "aiko")
        self.wait_for(self.has_event("unlock", "aiko", 2))
        self.walk_through()
        time.sleep(1)
        self.show("front", "aiko")
        self.wait_for(self.has_event("unlock", "aiko", 3))
        self.walk_through()
        self.say("ben checks in: the store is full (×)")
        self.show("front", "ben")
        self.wait_for(self.has_event("check_in", "ben"))
        self.walk_through()
        self.say("chika tries to check in: denied, no free seat")
        self.show("front", "chika")
        self.wait_for(self.has_event("denied", "chika"))
        self.say("aiko taps 'start checkout' in the app, goes out, then 'confirm checkout'")
        self.app("aiko", "checkout_begin")
        self.wait_for(self.has_event("checkout_begin", "aiko"))
        self.show("inside", "aiko")
        self.wait_for(self.has_event("unlock", "aiko", 4))
        self.walk_through()
        self.app("aiko", "checkout")
        self.wait_for(self.has_event("checkout", "aiko"))
        self.say("after checkout aiko's code no longer opens the door")
        self.show("inside", "aiko")
        self.wait_for(self.has_event("denied", "aiko"))
        self.say("chika scans the door's screen in the app and presses 入店する: presence-bound check-in")
        self.app("chika", "check_in", scanned=self.screen_code())
        self.wait_for(self.has_event("check_in", "chika"))
        self.walk_through()
        self.say("the broker drops out; the door keeps working offline")
        self.broker.stop()
        time.sleep(1.5)
        self.show("inside", "ben")
        time.sleep(1.5)
        self.walk_through()
        self.board.request(op="input", name="exit_button", active=True)
        time.sleep(0.1)
        self.board.request(op="input", name="exit_button", active=False)
        time.sleep(2)
        self.show("front", "ben")
        time.sleep(2)
        self.say("the broker is back: the backlog drains in order")
        self.broker.start()
        self.cloud.client.reconnect()
        self.wait_for(self.has_event("unlock", "ben", 3), 40)
        self.say("ben's stay runs over its (demo) 1-minute limit: warning, then overstay")
        self.wait_for(self.has_event("overstay_warning", "ben"), 60)
        self.wait_for(self.has_event("overstay", "ben"), 30)
        self.say("ben is overdue but can always leave")
        self.show("inside", "ben")
        self.wait_for(self.has_event("unlock", "ben", 4))
        self.say("the photo from the start of the day, replayed from home: refused not_present")
        self.app("demo", "check_in", scanned=photo)
        self.wait_for(self.has_event("denied", "demo"))
        self.say("chika checks out in the app without scanning: checking out never needs presence")
        self.app("chika", "checkout")
        self.wait_for(self.has_event("checkout", "chika"))
        time.sleep(2)

    def summary(self) -> int:
        events = self.events()
        seqs = sorted({e["seq"] for e in events})
        contiguous = seqs == list(range(1, len(seqs) + 1))
        print("\n" + "=" * 70)
        verdict = "contiguous: nothing lost" if contiguous else "WITH GAPS"
        print(f"demo finished in {time.monotonic() - self.started:.0f}s: {len(seqs)} events reached the "
              f"cloud, seq 1..{seqs[-1] if seqs else 0} {verdict}")
        for line in self.narration:
            print("  " + line)
        stored, gaps, lost = self._service_events(len(seqs))
        missing = set(seqs) - stored
        gap_text = ", ".join(f"{first}-{last}" for first, last in gaps) or "none"
        lost_text = ", ".join(f"{first}-{last}" for first, last in lost) or "none"
        print(f"the pass service stored {len(stored)} of them once each; open seq gaps: {gap_text}; "
              f"lost for good: {lost_text}")
        # mosquitto 2.0 does not keep a shared subscription's queue across its own restart: events the
        # door drained before the service had resubscribed never reached the service at first. The
        # service saw the gap and asked the door for them again (replay), from its journal.
        repaired = self._repaired()
        if repaired:
            print(f"  (the broker restart lost {repaired} for the service's shared subscription; the door "
                  "sent them again when the service asked)")
        print(f"door log: {STATE / 'door.log'}; service log: {STATE / 'officepass.log'}")
        def seen(type_: str, member: str, **fields: str) -> bool:
            return any(e["type"] == type_ and e["member"] == member
                       and all(e.get(k) == v for k, v in fields.items()) for e in events)

        presence = {
            "presence-bound check-in from the app": seen("check_in", "chika", source="remote"),
            "the replayed photo refused not_present": seen("denied", "demo", reason="not_present"),
            "checkout without presence": seen("checkout", "chika"),
        }
        for what, seen in presence.items():
            print(f"  presence: {what}: {'yes' if seen else 'NO'}")
        whole = not missing and not gaps and not lost
        return 0 if contiguous and seqs and whole and all(presence.values()) else 1

    def _service_events(self, expected: int) -> tuple[set[int], list[tuple[int, int]], list[tuple[int, int]]]:
        """What the service stored, its open gaps and what the door reported lost, once it has every
        event (a gap is repaired within seconds) or 30 s have passed."""
        end = time.monotonic() + 30
        while True:
            with sqlite3.connect(STATE / "officepass.db") as db:
                stored = {int(row[0]) for row in db.execute("SELECT seq FROM events")}
                gaps = [(int(a), int(b)) for a, b in db.execute('SELECT "first", "last" FROM seq_gaps')]
                lost = [(int(a), int(b)) for a, b in db.execute('SELECT "first", "last" FROM seq_lost')]
            if (len(stored) >= expected and not gaps) or time.monotonic() > end:
                return stored, gaps, lost
            time.sleep(0.2)

    def _repaired(self) -> int:
        """Events the door published again because the service asked (its log says so)."""
        text = (STATE / "door.log").read_text()
        return sum(int(n) for n in re.findall(r"replayed (\d+) events", text))


def main() -> int:
    os.chdir(ROOT)
    return Demo().run()


if __name__ == "__main__":
    sys.exit(main())
