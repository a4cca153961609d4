"""The closed wire (contract §4): each attack an intruder with broker access tried, as a test against
the configuration `officepass broker-config` writes, on a real mosquitto. The door-only attacks need
no door process (identities are clients); the service's run against the real service and door."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from officepass.connection import ServiceConnection
from officepass.keys import KeyRing
from officepass.link import DoorLink
from officepass.models import DoorRecord, LiveSession, StoreSeats
from tests.closed_broker import WATCHER, ClosedBroker, identities_for
from tests.procs import door_trusting_service
from tests.rig import wait_for
from tests.test_officepass_web import DOOR, STORE, Site, running_site, stored
from wire.acl import door_username
from wire.codes import parse_code
from wire.payloads import CommandReply
from wire.rules import DEFAULT_PREFIX
from wire.topics import Topics
from wire.vocab import Act

T = Topics()
NOT_AUTHORIZED = "Not authorized"


@pytest.fixture
def closed(tmp_path: Path) -> Iterator[ClosedBroker]:
    broker = ClosedBroker(tmp_path, identities_for({"s1": ["main", "back"]}, instances=("a", "b")))
    yield broker
    broker.stop()


def publish_results(client: mqtt.Client, acks: list[Any], topics: list[str]) -> list[str]:
    """What the broker said to each publish (QoS 1, MQTT 5 PUBACK reason codes), in order: "ok" (Success
    or No matching subscribers) or the refusal."""
    before = len(acks)
    for topic in topics:
        client.publish(topic, b"{}", qos=1).wait_for_publish(5)
    assert wait_for(lambda: len(acks) >= before + len(topics), 5)
    return ["ok" if not a.is_failure else str(a) for a in acks[before:]]


def test_no_anonymous_client_and_no_wrong_password(closed: ClosedBroker) -> None:
    anonymous, _ = closed.client(None)
    assert not anonymous.is_connected()
    wrong, _ = closed.client("door/s1/main", password="guessed")
    assert not wrong.is_connected()
    right, _ = closed.client("door/s1/main")
    assert right.is_connected()
    for c in (anonymous, wrong, right):
        c.loop_stop()


def test_a_door_says_only_its_own_things(closed: ClosedBroker) -> None:
    back, acks = closed.client(door_username("s1", "back"))  # not the store's controller
    forbidden = [T.status("s1", "main"), T.events("s1", "main"), T.reply("a", "s1", "main"),
                 T.cmd_result("s1", "main"), T.seats("s1"), T.session("s1", "m-1"), T.cmd("s1", "back"),
                 T.replay("s1", "back"), T.revoked(), T.config("s1", "back"), T.status("s2", "back")]
    assert publish_results(back, acks, forbidden) == [NOT_AUTHORIZED] * len(forbidden)
    own = [T.status("s1", "back"), T.events("s1", "back"), T.reply("a", "s1", "back"),
           T.cmd_result("s1", "back"), T.replay_result("s1", "back")]
    assert publish_results(back, acks, own) == ["ok"] * len(own)
    main, main_acks = closed.client(door_username("s1", "main"))  # the controller: the store's seats
    assert publish_results(main, main_acks, [T.seats("s1"), T.session("s1", "m-1")]) == ["ok"] * 2
    observer, observer_acks = closed.client(WATCHER)  # read only
    tried = [T.seats("s1"), T.status("s1", "main"), T.cmd("s1", "main")]
    assert publish_results(observer, observer_acks, tried) == [NOT_AUTHORIZED] * 3
    for c in (back, main, observer):
        c.loop_stop()


def test_a_door_cannot_overhear_another_doors_commands(closed: ClosedBroker) -> None:
    """The unlock swallowed and replayed: nobody but the door hears its commands, so there is
    nothing to capture; and nobody but the service may publish one."""
    spy, _ = closed.client(door_username("s1", "back"))
    heard: list[str] = []
    spy.on_message = lambda c, u, m: heard.append(m.topic)
    spy.subscribe([(T.cmd("s1", "main"), 1), (T.cmd("s1", "back"), 1), ("officepass/v1/#", 1)])
    service, _ = closed.client("svc/a")
    time.sleep(0.3)  # the subscription request is in; the barrier below proves the deliveries
    service.publish(T.cmd("s1", "main"), b"OP1:captured", qos=1).wait_for_publish(5)
    # Published after main's command on the same connection: the spy gets its own command only after
    # the broker has dealt with main's.
    service.publish(T.cmd("s1", "back"), b"OP1:its-own", qos=1).wait_for_publish(5)
    assert wait_for(lambda: T.cmd("s1", "back") in heard, 5)
    assert T.cmd("s1", "main") not in heard
    for c in (spy, service):
        c.loop_stop()


def test_a_client_id_cannot_be_taken_over(closed: ClosedBroker) -> None:
    door, _ = closed.client(door_username("s1", "main"), client_id=door_username("s1", "main"))
    intruder, _ = closed.client(WATCHER, client_id=door_username("s1", "main"))
    assert intruder.is_connected(), "it connects, as itself"
    time.sleep(0.5)
    assert door.is_connected(), "the door stays connected"
    log = closed.broker.log.read_text()
    assert f"as {WATCHER}" in log and f"Client {door_username('s1', 'main')} already connected" not in log
    for c in (door, intruder):
        c.loop_stop()


def test_only_the_commanded_door_answers_a_press(closed: ClosedBroker, tmp_path: Path) -> None:
    """A reply with the right correlation data on another door's reply topic is not the answer."""
    ring = KeyRing(tmp_path / "keys")
    ring.new("k1")
    access = closed.service_access("a")
    connection = ServiceConnection(access.host, access.port, access.credentials)
    link = DoorLink(connection, DEFAULT_PREFIX)
    assert connection.start()
    back, _ = closed.client(door_username("s1", "back"))  # the commanded door
    main, _ = closed.client(door_username("s1", "main"))  # a compromised door of the same store
    captured: list[mqtt.MQTTMessage] = []
    back.on_message = lambda c, u, m: captured.append(m)
    back.subscribe(T.cmd("s1", "back"), qos=1)
    time.sleep(0.3)

    def reply(client: mqtt.Client, door: str, command: mqtt.MQTTMessage) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = command.properties.CorrelationData
        cti = parse_code(command.payload.decode()).cti.hex()
        answer = CommandReply(cti, True, Act.UNLOCK).to_json()
        client.publish(T.reply("a", "s1", door), answer, qos=1, properties=props).wait_for_publish(5)

    answers: list[CommandReply | None] = []
    press = threading.Thread(target=lambda: answers.append(
        link.send("s1", "back", ring.command("m-1", Act.UNLOCK, "s1"), timeout=3)))
    press.start()
    assert wait_for(lambda: captured, 5)
    reply(main, "main", captured[0])  # main answers for back, on its own reply topic
    press.join()
    assert answers == [None], "not taken: the press shows the trouble screen"
    press = threading.Thread(target=lambda: answers.append(
        link.send("s1", "back", ring.command("m-1", Act.UNLOCK, "s1"), timeout=5)))
    press.start()
    assert wait_for(lambda: len(captured) == 2, 5)
    reply(back, "back", captured[1])
    press.join()
    assert answers[1] is not None and answers[1].ok, "the commanded door's own answer is"
    assert parse_code(captured[1].payload.decode()).exp - parse_code(captured[1].payload.decode()).iat == 15
    connection.stop()
    for c in (back, main):
        c.loop_stop()


def test_a_door_added_later_is_let_in_after_one_command_and_a_sighup(closed: ClosedBroker) -> None:
    old, _ = closed.client(door_username("s1", "main"))
    newcomer = door_username("s3", "main")
    assert not closed.client(newcomer, password="not yet")[0].is_connected()
    closed.regenerate(identities_for({"s1": ["main", "back"], "s3": ["main"]}, instances=("a", "b")))
    assert wait_for(lambda: closed.client(newcomer)[0].is_connected(), 10)
    assert old.is_connected(), "nobody already there is dropped"
    old.loop_stop()


# --- against the service and a real door -----------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with running_site(tmp_path, f"sqlite:///{tmp_path / 'officepass.db'}") as running:
        yield running


def test_an_observers_fakes_change_nothing_in_the_service(site: Site) -> None:
    site.as_member("m-1", "correct horse")
    assert wait_for(lambda: stored(site, StoreSeats, STORE) is not None, 15)
    seats_before = stored(site, StoreSeats, STORE).seats
    fake, acks = site.closed.client(WATCHER)
    fakes = [(T.seats(STORE), {"store": STORE, "capacity": 2, "occupied": 2, "available": 0, "symbol": "×",
                               "ts": "2026-12-01T10:00:00.000Z"}),
             (T.status(STORE, DOOR), {"online": False}),
             (T.session(STORE, "m-7"), {"member": "m-7", "state": "checked_in",
                                        "checked_in_at": "2026-12-01T10:00:00.000Z",
                                        "deadline": "2026-12-01T12:00:00.000Z", "overdue": False}),
             (T.events(STORE, DOOR), {"id": str(uuid.uuid4()), "seq": 1, "epoch": "x",
                                      "ts": "2026-12-01T10:00:00.000Z", "store": STORE, "door": DOOR,
                                      "type": "door_forced", "member": None, "source": "system",
                                      "reason": None})]
    for topic, body in fakes:
        fake.publish(topic, json.dumps(body), qos=1, retain=True).wait_for_publish(5)
    assert wait_for(lambda: len(acks) == len(fakes), 5)
    assert [str(a) for a in acks] == [NOT_AUTHORIZED] * len(fakes), "the broker refused every one"
    fake.loop_stop()
    assert stored(site, StoreSeats, STORE).seats == seats_before
    assert stored(site, DoorRecord, (STORE, DOOR)).online is True
    assert stored(site, LiveSession, (STORE, "m-7")) is None
    assert ">×<" not in site.client.get("/").text


def test_a_deleted_revocation_list_comes_back_within_one_republish(tmp_path: Path) -> None:
    with running_site(tmp_path, f"sqlite:///{tmp_path / 'officepass.db'}", republish_seconds=2) as site:
        site.as_member("op", "operator pass")
        assert site.post("/console/members/m-3/disable", {}) == 303
        site.door.wait_line("revocation list version 1 applied", 15)
        watcher = site.closed.recorder(T.revoked())
        assert wait_for(lambda: watcher.on(T.revoked()), 5), "retained, for a door that comes later"
        # Deleted by hand (with another service instance's identity: only a service may publish it).
        deleter, _ = site.closed.client("svc/b")
        deleter.publish(T.revoked(), b"", qos=1, retain=True).wait_for_publish(5)
        assert wait_for(lambda: watcher.on(T.revoked())[-1:] == [b""], 5)
        assert wait_for(lambda: watcher.on(T.revoked())[-1].startswith(b"OPR1:"), 10), "republished"
        deleter.loop_stop()
        watcher.close()


def test_a_second_controller_is_refused_and_shown(site: Site, tmp_path: Path) -> None:
    other = tmp_path / "second"
    other.mkdir()
    key = site.service.keys.public_keys()[0]
    board, door = door_trusting_service(other, site.closed.door_mqtt(STORE, "back"), key.kid, key.public_b64,
                                        door={"store": STORE, "name": "back", "seats": 5})
    try:
        door.wait_line("connected to broker")
        site.as_member("op", "operator pass")
        shown = "two controllers for store shinjuku-3"
        assert wait_for(lambda: shown in site.client.get("/console").text, 15)
        seats = stored(site, StoreSeats, STORE)
        assert seats is not None and seats.value is not None and seats.value.capacity == 2, \
            "the store's seats are still its controller's"
    finally:
        door.stop()
        board.close()
