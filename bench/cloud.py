"""The cloud link: outbox drain rate, decision-to-broker latency, daemon memory.

Targets (issue 5): 100,000 journaled events drained to a local mosquitto in at most 20 s;
decision-to-broker p99 at most 100 ms for events, status and seats; resident memory of the
running daemon with a camera reader under 120 MB.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.procs import Door, member_code, percentile, rss_mb, write_config
from controller.decision import DoorState, Event
from controller.journal import Journal
from hwsim.broker import Broker, Recorder
from wire.rules import DEFAULT_PREFIX
from wire.topics import DoorTopics
from wire.vocab import EventType, Source

TOPICS = DoorTopics(DEFAULT_PREFIX, "bench", "main")
EVENTS, STATUS, SEATS, CMD = TOPICS.events, TOPICS.status, TOPICS.seats, TOPICS.cmd


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def drain(n: int = 100_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        config = Path(tmp) / "door.toml"
        write_config(config, mqtt_port=broker.port, camera=False)
        journal = Journal(Path(tmp) / "doorctl.db")
        now = time.time()
        batch = [Event(EventType.UNLOCK, None, Source.BUTTON)] * 1000
        for _ in range(n // 1000):
            journal.commit(DoorState(), DoorState(), batch, now=now)
        journal.close()
        cloud = Recorder(broker.port, topic=EVENTS, client_id="bench-drain")
        time.sleep(0.5)
        start = time.monotonic()
        door = Door(config)
        reader = Journal(Path(tmp) / "doorctl.db")
        try:
            door.wait_log("connected to broker")
            connected = time.monotonic()
            while reader.backlog() > 0 and time.monotonic() - connected < 120:
                time.sleep(0.05)
            drained = time.monotonic()
            cloud.wait(lambda: len(cloud.messages) >= n, 30)
            seqs = {json.loads(p)["seq"] for _, p, _ in cloud.messages}
            print(f"{'drain 100,000 journaled events':<44}{drained - connected:>8.2f} s from connect "
                  f"({drained - start:.2f} s from start)   target <= 20 s")
            print(f"{'  events received by a subscriber':<44}{len(seqs):>8,} distinct of {n:,}"
                  f" ({len(cloud.messages):,} messages)")
        finally:
            door.stop()
            cloud.close()
            broker.stop()
            reader.close()


def latency_and_memory(presses: int = 60, commands: int = 40) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        config = Path(tmp) / "door.toml"
        write_config(config, mqtt_port=broker.port, camera=True, seats=1000)
        cloud = Recorder(broker.port, topic="officepass/#", client_id="bench-latency")
        door = Door(config, separate_board=True)
        try:
            door.wait_log("connected to broker")
            time.sleep(3)
            start_index = len(cloud.messages)
            for _ in range(presses):
                door.request(op="input", name="exit_button", active=True)
                time.sleep(0.05)
                door.request(op="input", name="exit_button", active=False)
                time.sleep(0.9)  # the 0.5 s pulse ends between presses
            for i in range(commands):
                cloud.publish(CMD, member_code(f"seat-{i}", act="check_in"))
                time.sleep(0.25)
            time.sleep(1)
            lat: dict[str, list[float]] = {"events": [], "status": [], "seats": []}
            with cloud.cond:
                received = list(zip(cloud.messages[start_index:], cloud.arrived[start_index:], strict=True))
            for (topic, payload, retained), arrived in received:
                key = {EVENTS: "events", STATUS: "status", SEATS: "seats"}.get(topic)
                if retained or not payload or key is None:
                    continue  # commands (code text) and replies are not the door's state
                body = json.loads(payload)
                if key and "ts" in body:
                    lat[key].append((arrived - _ts(body["ts"])) * 1000)
            for key, samples in lat.items():
                if samples:
                    label = f"decision-to-broker latency, {key} (ms)"
                    print(f"{label:<44}p50 {statistics.median(samples):.1f}"
                          f"  p99 {percentile(samples, 99):.1f}  (n={len(samples)})   target p99 <= 100")
            pids = door.pids()
            total = sum(rss_mb(pid) for pid in pids)
            parts = " + ".join(f"{rss_mb(pid):.0f}" for pid in pids)
            print(f"{'resident memory, daemon + camera worker':<44}{total:>8.0f} MB ({parts})"
                  "   target < 100 MB")
        finally:
            door.stop()
            cloud.close()
            broker.stop()


def main() -> None:
    drain()
    latency_and_memory()


if __name__ == "__main__":
    main()
