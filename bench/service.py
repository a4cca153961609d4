"""The pass service: event ingest rate, press-to-answer latency, page weight.

Issue 12's figures: events ingested per second into SQLite and into PostgreSQL from a local
broker (10 doors x 10,000 events); the time from an app button press to the page showing the
door's answer (p50/p99 over 200 presses, through the service's HTTP stack, a real broker and a
real `doorctl run --sim`); the bytes and requests of the member screens.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from bench.procs import percentile
from hwsim.broker import Broker
from officepass.connection import ServiceConnection
from officepass.consumer import FleetConsumer
from officepass.db import engine_for, migrate, sessions
from officepass.models import EventRecord
from wire.rules import DEFAULT_PREFIX
from wire.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
DOORS, PER_DOOR = 10, 10_000

TOPICS = Topics()


def _events(door: int) -> list[bytes]:
    import json

    return [json.dumps({"id": str(uuid.uuid4()), "seq": seq, "epoch": "bench",
                        "ts": "2027-01-15T08:00:00.000Z", "store": f"s{door}", "door": "main",
                        "type": "unlock", "member": None, "source": "button", "reason": None}).encode()
            for seq in range(1, PER_DOOR + 1)]


def _publish_fleet(port: int, started: list[float]) -> subprocess.Popen[bytes]:
    """10 doors x 10,000 events, interleaved as a fleet publishes, QoS 1, from a process of its own
    (the doors are elsewhere: they do not share the service's interpreter)."""
    started.append(time.monotonic())
    return subprocess.Popen([sys.executable, "-m", "bench.service", "publish", str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def publish(port: int) -> None:
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.max_inflight_messages_set(1000)
    publisher.max_queued_messages_set(0)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    batches = [_events(d) for d in range(DOORS)]
    sent: list[mqtt.MQTTMessageInfo] = []
    for seq in range(PER_DOOR):
        sent = [publisher.publish(TOPICS.events(f"s{door}", "main"), batches[door][seq], qos=1)
                for door in range(DOORS)]
        if seq % 50 == 49:  # keep paho's outgoing queue short
            sent[-1].wait_for_publish(60)
    sent[-1].wait_for_publish(120)
    publisher.loop_stop()


def bare_subscriber_rate() -> float:
    """The baseline: a bare paho subscriber (QoS 1, the shared subscription the service uses),
    counting what it receives from the same broker and the same publishing."""
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        got = [0]
        done = threading.Event()
        total = DOORS * PER_DOOR

        def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            got[0] += 1
            if got[0] >= total:
                done.set()

        bare = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        bare.on_message = on_message
        bare.connect("127.0.0.1", broker.port)
        bare.subscribe(TOPICS.all_events_shared(), qos=1)
        bare.loop_start()
        time.sleep(0.5)  # the subscription is in before the first publish (nothing to wait on here)
        started: list[float] = []
        publisher = _publish_fleet(broker.port, started)
        done.wait(600)
        took = time.monotonic() - started[0]
        publisher.wait(60)
        bare.loop_stop()
        broker.stop()
        return got[0] / took


def ingest(url: str, label: str, baseline: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        migrate(url)
        db = sessions(engine_for(url))
        connection = ServiceConnection("127.0.0.1", broker.port)
        consumer = FleetConsumer(db, connection, DEFAULT_PREFIX)
        consumer.start()
        connection.start()
        started: list[float] = []
        publisher = _publish_fleet(broker.port, started)

        def stored() -> int:
            with db() as s:
                return int(s.execute(select(func.count()).select_from(EventRecord)).scalar_one())

        total = DOORS * PER_DOOR
        while stored() < total and time.monotonic() - started[0] < 900:
            time.sleep(0.5)
        took = time.monotonic() - started[0]
        rate = stored() / took
        print(f"{'events stored, ' + label:<44}{rate:>8,.0f} /s   ({stored():,} of {total:,} in {took:.1f} s;"
              f" {rate / baseline:.0%} of the bare subscriber's {baseline:,.0f} /s)")
        publisher.wait(60)
        connection.stop()
        consumer.stop()
        broker.stop()


@contextmanager
def service_with_door(members: list[str], **door_sections: Any) -> Iterator[tuple[Any, Any]]:
    """The service's HTTP app (FastAPI's TestClient), its door link, a real broker and a real
    `doorctl run --sim` trusting its key, with `members` (password "bench password") and the store
    shinjuku-3; yields the logged-out client and the simulated board."""
    from fastapi.testclient import TestClient

    from officepass.keys import KeyRing
    from officepass.members import add_member, add_store
    from officepass.service import BrokerAccess, Service
    from tests.procs import door_trusting_service, plain_mqtt

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Broker(tmp)
        ring = KeyRing(tmp / "keys")
        key = ring.new("bench")
        url = f"sqlite:///{tmp / 'o.db'}"
        migrate(url)
        db = sessions(engine_for(url))
        with db.begin() as s:
            for member in members:
                add_member(s, member, "Bench", "bench password")
            add_store(s, "shinjuku-3", "Bench store", ["main"])
        lock = {"relay_pin": "GPIO17", "unlock_seconds": 0.2}
        board, door = door_trusting_service(tmp, plain_mqtt(broker.port), key.kid, key.public_b64, lock=lock,
                                            **door_sections)
        service = Service(db, ring, BrokerAccess("127.0.0.1", broker.port), "bench-secret-" + "x" * 32,
                          base_url="http://bench.test")
        service.start()
        try:
            with TestClient(service.app) as client:
                yield client, board
        finally:
            service.stop()
            door.stop()
            board.close()
            broker.stop()


def csrf_token(client: Any, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    return found.group(1) if found else ""


def log_in(client: Any, member: str) -> None:
    client.cookies.clear()
    client.post("/login", data={"member": member, "password": "bench password",
                                "csrf": csrf_token(client, "/login")})


def press_latency(presses: int = 200) -> None:
    # Presses are limited per member (PRESSES_PER_MINUTE): the 200 come from 20 members, ten each
    # (入店する, eight 開錠する, チェックアウトする), one after another as the store's two seats allow.
    members = [f"m-{i}" for i in range(20)]
    with service_with_door(members) as (client, _board):
        samples: list[float] = []
        each = presses // len(members)
        for member in members:
            log_in(client, member)
            form = csrf_token(client, "/s/shinjuku-3/main")
            for act in ["check_in"] + ["unlock"] * (each - 2) + ["checkout"]:
                started = time.perf_counter()
                response = client.post("/s/shinjuku-3/main/act", data={"act": act, "csrf": form})
                samples.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"press {act} of {member} answered {response.status_code}")
        label = "app button to the door answer on the page"
        p50, p99 = statistics.median(samples), percentile(samples, 99)
        print(f"{label:<44}p50 {p50:.1f}  p99 {p99:.1f} ms  (n={presses}, HTTP + broker + door)")
        weigh(client.get)


def weigh(get: Callable[[str], Any]) -> None:
    """Bytes and requests of the member screens with what they load (styles are inline; the scan
    page loads the vendored decoder), as stored and as sent compressed."""
    for path in ("/login", "/", "/s/shinjuku-3/main", "/s/shinjuku-3/main/code", "/scan"):
        responses = [get(path)]
        body = responses[0].content
        for asset in re.findall(rb'<(?:script|link|img)[^>]+(?:src|href)="(/[^"]+)"', body):
            responses.append(get(asset.decode()))
        plain = sum(len(r.content) for r in responses)
        wire = sum(r.num_bytes_downloaded for r in responses)
        print(f"{'page weight ' + path:<44}{plain:>8,} bytes ({wire:,} sent gzipped), "
              f"{len(responses)} request(s)")


def _open_stream(port: int, cookie: str) -> socket.socket:
    """A member's store list as a phone keeps it open: its event stream, the first snapshot read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET /live/seats HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    got = b""
    while b"event: seats" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"a stream closed before its first snapshot: {got[:200]!r}")
        got += chunk
    sock.setblocking(False)
    return sock


def _page_times(port: int, cookie: str, n: int) -> list[float]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        connection.request("GET", "/", headers={"Cookie": cookie})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"the store list answered {answer.status}")
        samples.append((time.perf_counter() - started) * 1000)
    connection.close()
    return samples


def open_streams(streams: int = 1000, pages: int = 300) -> None:
    """Page time (the store list, p50/p99) with no stream open, then with `streams` open live
    streams while the fleet's seats change ten times a second (every stream is told each change),
    against one instance in a process of its own (SQLite, a real broker)."""
    import json
    import selectors
    import urllib.parse
    import urllib.request

    from hwsim.broker import free_port
    from officepass.members import add_member, add_store

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Broker(tmp)
        url = f"sqlite:///{tmp / 'o.db'}"
        migrate(url)
        with sessions(engine_for(url)).begin() as s:
            add_member(s, "m-1", "Bench", "bench password")
            for store in range(20):
                add_store(s, f"s{store}", f"Store {store}", ["main"])
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "bench.serve_site", url, str(broker.port), str(port),
                                   str(tmp / "keys")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{base}/login", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.1)
            jar = urllib.request.HTTPCookieProcessor()
            opener = urllib.request.build_opener(jar)
            login_page = opener.open(f"{base}/login").read().decode()
            token = re.search(r'name="csrf" value="([^"]+)"', login_page)
            assert token
            form = urllib.parse.urlencode({"member": "m-1", "password": "bench password",
                                           "csrf": token.group(1), "next": "/"}).encode()
            opener.open(f"{base}/login", data=form).read()
            cookie = "; ".join(f"{c.name}={c.value}" for c in jar.cookiejar)
            _page_times(port, cookie, 30)  # warm
            quiet = _page_times(port, cookie, pages)
            publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            publisher.connect("127.0.0.1", broker.port)
            publisher.loop_start()
            opened_at = time.perf_counter()
            socks = [_open_stream(port, cookie) for _ in range(streams)]
            opening = time.perf_counter() - opened_at
            selector = selectors.DefaultSelector()
            for sock in socks:
                selector.register(sock, selectors.EVENT_READ)
            stop = threading.Event()
            updates = [0]

            def drain() -> None:  # read what the streams are sent, as the phones would
                while not stop.is_set():
                    for key, _ in selector.select(0.2):
                        try:
                            if key.fileobj.recv(65536):  # type: ignore[union-attr]
                                updates[0] += 1
                        except BlockingIOError:
                            pass

            def change_seats() -> None:  # a busy fleet: one store's seats change every 100 ms
                n = 0
                while not stop.wait(0.1):
                    n += 1
                    occupied = n % 3
                    body = {"store": f"s{n % 20}", "capacity": 2, "occupied": occupied,
                            "available": 2 - occupied, "symbol": "○△×"[occupied],
                            "ts": "2027-01-15T08:00:00.000Z"}
                    publisher.publish(TOPICS.seats(f"s{n % 20}"), json.dumps(body), qos=1, retain=True)

            workers = [threading.Thread(target=drain, daemon=True),
                       threading.Thread(target=change_seats, daemon=True)]
            for worker in workers:
                worker.start()
            time.sleep(2)  # the changes are flowing to every stream
            busy = _page_times(port, cookie, pages)
            stop.set()
            for worker in workers:
                worker.join(5)
            publisher.loop_stop()
            for sock in socks:
                sock.close()
            label = "store list page, no stream open"
            print(f"{label:<44}p50 {statistics.median(quiet):.1f}  p99 {percentile(quiet, 99):.1f} ms  "
                  f"(n={pages})")
            label = f"store list page, {streams:,} live streams open"
            print(f"{label:<44}p50 {statistics.median(busy):.1f}  p99 {percentile(busy, 99):.1f} ms  "
                  f"(n={pages}; seats changing 10/s, {updates[0]:,} stream updates read; "
                  f"{streams:,} opened in {opening:.1f} s)")
        finally:
            server.terminate()
            server.wait(10)
            broker.stop()


def main() -> None:
    if sys.argv[1:2] == ["publish"]:  # the fleet's publisher, in its own process (_publish_fleet)
        publish(int(sys.argv[2]))
        return
    sys.path.insert(0, str(ROOT))  # tests.procs: the door the benchmarks press against
    baseline = bare_subscriber_rate()
    print(f"{'events received, bare paho subscriber':<44}{baseline:>8,.0f} /s   (same broker and load)")
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        ingest(f"sqlite:///{Path(tmp) / 'ingest.db'}", "SQLite file", baseline)
    from tests.pg import postgres_cluster

    with postgres_cluster() as url:
        ingest(url, "PostgreSQL", baseline)
    press_latency()
    open_streams()


if __name__ == "__main__":
    main()
