"""The cloud link when things go wrong: a PUBACK id wrap, a crash mid-flood, big and forged
revocation lists, a broker that is not there. Through a real mosquitto and the simulated board."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from controller.decision import ExitButton
from hwsim.broker import Broker, Recorder
from tests.helpers import code, config_doc, revocation, toml_text
from tests.procs import BoardProcess, DoorProcess
from tests.rig import Rig, wait_for
from tests.test_e2e import CMD, DOOR, EVENTS, REVOKED, STORE, TOPICS, Store, store  # noqa: F401  (store is a fixture)


def test_a_delivered_mark_needs_the_puback_of_that_very_publish(tmp_path: Path) -> None:
    """Past 65,535 publishes paho's message ids wrap: an event must still be marked delivered only
    on its own PUBACK, never on one left over from a status or a reply."""
    broker = Broker(tmp_path)
    rig = Rig(tmp_path, mqtt={"host": "127.0.0.1", "port": broker.port, "tls": False})
    try:
        cloud = rig.daemon.cloud
        assert cloud is not None and wait_for(lambda: cloud.connected, 15)
        topic = cloud.topics.cmd_result
        for _ in range(7):  # 70,000 publishes that are not events: replies, as a flood would cause
            rig.on_reactor(lambda: [cloud._send(topic, b"{}") for _ in range(10_000)])
            assert wait_for(lambda: cloud.publishes_waiting() == (0, 0), 30), cloud.publishes_waiting()
        broker.stop()
        assert wait_for(lambda: not cloud.connected, 15)
        before = rig.reader.backlog()
        for _ in range(20):
            rig.on_reactor(lambda: (rig.core.handle(ExitButton(True)), rig.core.handle(ExitButton(False))))
        time.sleep(1)
        assert rig.reader.backlog() == before + 20, "nothing is delivered while the broker is down"
        broker.start()
        seen = Recorder(broker.port, topic=EVENTS, client_id="wrap-check")
        assert wait_for(lambda: rig.reader.backlog() == 0, 60), "delivered once the broker is back"
        assert wait_for(lambda: len({json.loads(p)["seq"] for _, p, _ in seen.messages}) >= 20, 15)
        seen.close()
    finally:
        rig.close()
        broker.stop()


def test_commands_are_acknowledged_only_once_decided(store: Store) -> None:  # noqa: F811
    """600 commands, the door SIGKILLed 0.3 s into them: after a restart every one is decided
    exactly once and answered (the broker redelivers what was not acknowledged)."""
    replies = Recorder(store.broker.port, topic=TOPICS.all.reply("+", STORE, DOOR), client_id="flood-replies")
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="flood",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", store.broker.port)
    client.loop_start()
    texts = [code(f"k-{i}", iat=int(time.time()), ttl=60, act="unlock") for i in range(600)]
    for i, text in enumerate(texts):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = TOPICS.all.reply(f"flood{i}", STORE, DOOR)
        props.CorrelationData = str(i).encode()
        client.publish(CMD, text, qos=1, properties=props)
    time.sleep(0.3)
    assert store.door is not None
    store.door.kill(signal.SIGKILL)
    store.door.popen.wait(5)
    store.start_door()
    assert replies.wait(lambda: len({t for t, _, _ in replies.messages}) >= 600, 90), \
        f"{len({t for t, _, _ in replies.messages})} of 600 answered"
    client.loop_stop()
    client.disconnect()
    answers = {t: json.loads(p) for t, p, _ in replies.messages}
    odd = [a for a in answers.values() if a["reason"] != "not_checked_in" or not a["cti"]]
    assert not odd, odd[:5]
    denied_ctis = lambda: {e["cti"] for e in store.events() if e["type"] == "denied"}  # noqa: E731
    assert store.cloud.wait(lambda: len(denied_ctis()) >= 600, 30)
    denials: dict[str, set[str]] = {}
    for e in store.events():
        if e["type"] == "denied":
            denials.setdefault(e["cti"], set()).add(e["id"])
    assert len(denials) == 600 and all(len(ids) == 1 for ids in denials.values()), "each decided once"
    replies.close()


def test_revocation_lists_are_bounded_and_checked_off_the_main_loop(store: Store) -> None:  # noqa: F811
    board = store.board
    too_long = revocation(10, [f"m-{i}" for i in range(100_001)])
    store.cloud.publish(REVOKED, too_long, retain=True)
    assert store.door is not None
    store.door.wait_line("over the limit of 100000", 30)
    big = revocation(11, [f"m-{i}" for i in range(100_000)])
    since = board.request(op="timeline", since=0)["changes"][-1][0] if board.request(
        op="timeline", since=0)["changes"] else 0.0
    store.cloud.publish(REVOKED, big, retain=True)
    for _ in range(8):  # the exit button while the list is decoded, checked and stored
        board.press()
        time.sleep(0.25)
    store.wait_event("revocation_applied", timeout=30)
    assert [e["count"] for e in store.events() if e["type"] == "revocation_applied"] == [100_000]
    latencies = []
    pressed = None
    for t, _gpio, role, level in board.request(op="timeline", since=since)["changes"]:
        if role == "exit_button" and level:
            pressed = t
        elif role == "relay" and level and pressed is not None:
            latencies.append(t - pressed)
            pressed = None
    assert latencies and max(latencies) < 0.1, latencies


def test_an_offline_door_logs_no_error(tmp_path: Path) -> None:
    """No broker at all: 'not connected' is a state a door lives in, not an error line."""
    doc = config_doc(lock={"relay_pin": "GPIO17", "exit_button_pin": "GPIO22"},
                     mqtt={"host": "127.0.0.1", "port": 9, "tls": False})
    doc["storage"] = {"path": str(tmp_path / "doorctl.db")}
    config = tmp_path / "door.toml"
    config.write_text(toml_text(doc))
    board = BoardProcess(config, tmp_path / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        for _ in range(3):
            board.press()
            time.sleep(1.5)
        assert wait_for(lambda: board.request(op="timeline", since=0)["changes"], 5)
        assert "ERROR" not in door.output(), door.output()
        assert door.popen.poll() is None
    finally:
        door.stop()
        board.close()
