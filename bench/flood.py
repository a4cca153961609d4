"""The exit button under a command flood: time from the button's edge to the relay, and memory.

Targets (issue 10, item 3): the exit button energizes the relay within 100 ms (p99) of its
edge whatever the network does, under 20,000 commands; the daemon's peak RSS stays under
120 MB. The flood mixes what an attacker on the broker can send: garbage, and validly signed
commands for members who are not inside (each one verified and journaled as a denial).
Measured on the simulated board's own timeline (both edges on one monotonic clock).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.procs import Door, member_code, percentile, write_config
from hwsim.broker import Broker, Recorder
from wire.rules import DEFAULT_PREFIX
from wire.topics import DoorTopics

TOPICS = DoorTopics(DEFAULT_PREFIX, "bench", "main")
CMD, RESULT = TOPICS.cmd, TOPICS.cmd_result


def _flood(port: int, n: int, done: threading.Event) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-flood",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    # Every signed one distinct: each is verified and journaled, none is a cheap redelivery.
    signed = [member_code(f"stranger-{i % 500}", act="unlock") for i in range(n // 2)]
    last = None
    for i in range(n):
        payload = signed[i // 2] if i % 2 else f"garbage-{i}".encode()
        last = client.publish(CMD, payload, qos=1)
    if last is not None:
        last.wait_for_publish(120)
    client.loop_stop()
    client.disconnect()
    done.set()


def _press_latencies(door: Door, since: float) -> list[float]:
    changes = door.request(op="timeline", since=since)["changes"]
    latencies: list[float] = []
    pressed_at: float | None = None
    for t, _gpio, role, level in changes:
        if role == "exit_button" and level:
            pressed_at = t
        elif role == "relay" and level and pressed_at is not None:
            latencies.append((t - pressed_at) * 1000)
            pressed_at = None
    return latencies


def flood(n: int = 20_000) -> None:
    # The journal on the project's disk, as on the Pi's SD card (not tmpfs): every denial is an fsync.
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1]) as tmp:
        broker = Broker(Path(tmp))
        config = Path(tmp) / "door.toml"
        write_config(config, mqtt_port=broker.port, camera=False, seats=2, unlock_seconds=0.2)
        replies = Recorder(broker.port, topic=RESULT, client_id="bench-replies")
        door = Door(config, separate_board=True)
        try:
            door.wait_log("connected to broker")
            time.sleep(1)
            since = door.request(op="timeline", since=0)["changes"][-1][0] if door.request(
                op="timeline", since=0)["changes"] else 0.0
            done = threading.Event()
            started = time.monotonic()
            threading.Thread(target=_flood, args=(broker.port, n, done), daemon=True).start()
            presses = 0
            # Press all through the flood and a little after it was sent.
            while not done.is_set() or time.monotonic() - started < 5:
                door.request(op="input", name="exit_button", active=True)
                time.sleep(0.05)
                door.request(op="input", name="exit_button", active=False)
                presses += 1
                time.sleep(0.3)  # the 0.2 s pulse ends between presses
                if time.monotonic() - started > 300:
                    break
            sent = time.monotonic() - started
            latencies = _press_latencies(door, since)
            replies.wait(lambda: len(replies.messages) >= n, 120)
            answered = time.monotonic() - started
            peak = _peak_rss_mb(door.proc.pid)
            print(f"{'exit button to relay under the flood (ms)':<48}p50 {statistics.median(latencies):.1f}  "
                  f"p99 {percentile(latencies, 99):.1f}  max {max(latencies):.1f}  "
                  f"(n={len(latencies)} of {presses} presses)   target p99 <= 100")
            print(f"{'commands sent / answered':<48}{n:,} in {sent:.1f} s / {len(replies.messages):,} "
                  f"in {answered:.1f} s")
            print(f"{'daemon peak RSS during the flood (VmHWM)':<48}{peak:>8.0f} MB   target < 120 MB")
        finally:
            door.stop()
            replies.close()
            broker.stop()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    flood()


if __name__ == "__main__":
    main()
