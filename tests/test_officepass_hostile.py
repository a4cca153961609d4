"""Bad payloads on the broker never reach the pages: every MQTT message goes through the wire's typed
payloads, one that does not validate is logged and dropped, and every member and console page still
answers 200. Through a real mosquitto, the real fleet consumer and a real door."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from officepass.models import DoorRecord, EventRecord, LiveSession, StoreSeats
from tests.rig import wait_for
from tests.test_officepass_web import DOOR, STORE, Site, running_site
from wire.topics import Topics

TOPICS = Topics()
VALID: dict[str, dict[str, Any]] = {
    "status": {"online": True, "lock": "locked", "door": "closed", "alarms": [], "readers": {"front": "ok"},
               "clock_synced": True, "version": "0.1.0", "ts": "2026-12-01T10:00:00.000Z"},
    "seats": {"store": STORE, "capacity": 2, "occupied": 0, "available": 2, "symbol": "○",
              "ts": "2026-12-01T10:00:00.000Z"},
    "session": {"member": "m-9", "state": "checked_in", "checked_in_at": "2026-12-01T10:00:00.000Z",
                "deadline": "2026-12-01T12:00:00.000Z", "overdue": False},
    "event": {"id": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "seq": 1, "epoch": "e1",
              "ts": "2026-12-01T10:00:00.000Z", "store": STORE, "door": "back", "type": "check_in",
              "member": "m-9", "source": "entry", "reason": None},
}
ODD_VALUES: list[Any] = [None, 5, -1, 2**70, 1e308, "", "x" * 300, "?", "🙂", [], [5], {}, {"a": 1}, True,
                         "not-a-time", float("nan")]


def topic_of(kind: str) -> str:
    return {"status": TOPICS.status(STORE, "back"), "seats": TOPICS.seats(STORE),
            "session": TOPICS.session(STORE, "m-9"), "event": TOPICS.events(STORE, "back")}[kind]


def mutations(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    """Valid payloads with one to three fields replaced, removed or the whole thing garbled."""
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        kind = rng.choice(list(VALID))
        body = dict(VALID[kind])
        if kind == "event":
            body["id"] = f"{i:08d}-0000-4000-8000-000000000000"
            body["seq"] = i + 2
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(list(body))
            if rng.random() < 0.2:
                del body[key]
            else:
                body[key] = rng.choice(ODD_VALUES)
        payload = json.dumps(body).encode()
        if rng.random() < 0.1:
            garbled = [b"{", b"\xff\xfe", b"[]", b"null", b"{}" * 40_000, payload[: len(payload) // 2]]
            payload = rng.choice(garbled)
        out.append((topic_of(kind), payload))
    return out


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_hostile_payloads_are_dropped_and_every_page_answers(tmp_path: Path, database: str) -> None:
    with running_site(tmp_path, database) as site:
        _publish_and_check(site)


def _publish_and_check(site: Site) -> None:
    # The door's own seats first (a real, valid one), so the store list has something to show.
    assert wait_for(lambda: _stored(site, StoreSeats, STORE) is not None, 15)
    rng = random.Random(20261201)
    hostile = [
        (TOPICS.seats(STORE), json.dumps({**VALID["seats"], "symbol": "?"}).encode()),  # unknown symbol
        (TOPICS.status(STORE, "back"), json.dumps({**VALID["status"], "alarms": 5}).encode()),
        *mutations(rng, 400),
    ]
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="hostile",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", site.broker.port)
    client.loop_start()
    try:
        for topic, payload in hostile:
            client.publish(topic, payload, qos=1, retain=not topic.endswith("events")).wait_for_publish(5)
        # The barrier: a valid status for a door nobody else speaks for, published last on the same
        # connection; once it is stored, every message before it has been read.
        marker = TOPICS.status(STORE, "marker")
        client.publish(marker, json.dumps(VALID["status"]), qos=1, retain=True).wait_for_publish(5)
        assert wait_for(lambda: _stored(site, DoorRecord, (STORE, "marker")) is not None, 30)
    finally:
        client.loop_stop()
        client.disconnect()

    seats = _stored(site, StoreSeats, STORE)
    assert seats is not None and seats.value is not None, "what is stored is a valid seats payload"
    back = _stored(site, DoorRecord, (STORE, "back"))
    assert back is None or back.last_status is not None or back.status == {"online": False}
    session = _stored(site, LiveSession, (STORE, "m-9"))
    assert session is None or session.value is not None
    with site.db() as s:  # type: ignore[operator]
        stored_events = [e.body for e in s.query(EventRecord).filter_by(door="back")]
    for body in stored_events:
        assert isinstance(body["seq"], int) and isinstance(body["ts"], str) and body["store"] == STORE

    site.as_member("m-1", "correct horse")
    for path in ("/", f"/s/{STORE}/{DOOR}", f"/s/{STORE}/back", "/code", "/scan"):
        response = site.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    site.as_member("op", "operator pass")
    for path in ("/console", f"/console?store={STORE}", "/console?hours=1", "/console?door=back"):
        response = site.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])


def _stored(site: Site, model: Any, key: Any) -> Any:
    with site.db() as s:  # type: ignore[operator]
        row = s.get(model, key)
        if row is not None:
            s.expunge(row)
        return row
