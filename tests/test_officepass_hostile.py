"""Bad payloads on the broker never reach the pages: every MQTT message goes through the wire's typed
payloads, one that does not validate is logged and dropped, and every member and console page still
answers 200. Through the closed broker, the real fleet consumer and a real door; the hostile payloads
come from a door's own identity (a compromised controller of another store), on the topics its ACL
lets it publish to."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from officepass.models import DoorRecord, EventRecord, LiveSession, StoreSeats
from tests.rig import wait_for
from tests.test_officepass_web import DOOR, STORE, Site, running_site, stored
from wire.acl import door_username
from wire.topics import Topics

TOPICS = Topics()
ANNEX, SIDE = "annex", "side"  # a store whose controller has gone rogue
VALID: dict[str, dict[str, Any]] = {
    "status": {"online": True, "lock": "locked", "door": "closed", "alarms": [], "readers": {"front": "ok"},
               "clock_synced": True, "version": "0.1.0", "ts": "2026-12-01T10:00:00.000Z"},
    "seats": {"store": ANNEX, "capacity": 2, "occupied": 0, "available": 2, "symbol": "○",
              "ts": "2026-12-01T10:00:00.000Z"},
    "session": {"member": "m-9", "state": "checked_in", "checked_in_at": "2026-12-01T10:00:00.000Z",
                "deadline": "2026-12-01T12:00:00.000Z", "overdue": False},
    "event": {"id": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "seq": 1, "epoch": "e1",
              "ts": "2026-12-01T10:00:00.000Z", "store": ANNEX, "door": SIDE, "type": "check_in",
              "member": "m-9", "source": "entry", "reason": None},
}
ODD_VALUES: list[Any] = [None, 5, -1, 2**70, 1e308, "", "x" * 300, "?", "🙂", [], [5], {}, {"a": 1}, True,
                         "not-a-time", float("nan")]


def topic_of(kind: str) -> str:
    return {"status": TOPICS.status(ANNEX, SIDE), "seats": TOPICS.seats(ANNEX),
            "session": TOPICS.session(ANNEX, "m-9"), "event": TOPICS.events(ANNEX, SIDE)}[kind]


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


def test_hostile_payloads_are_dropped_and_every_page_answers(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'officepass.db'}"
    with running_site(tmp_path, database, extra_stores={ANNEX: [SIDE]}) as site:
        _publish_and_check(site)


def _publish_and_check(site: Site) -> None:
    # The real door's seats first, so the store list has something valid to show beside the rest.
    assert wait_for(lambda: stored(site, StoreSeats, STORE) is not None, 15)
    rng = random.Random(20261201)
    hostile = [
        (TOPICS.seats(ANNEX), json.dumps({**VALID["seats"], "symbol": "?"}).encode()),  # unknown symbol
        (TOPICS.status(ANNEX, SIDE), json.dumps({**VALID["status"], "alarms": 5}).encode()),
        *mutations(rng, 400),
    ]
    client, acks = site.closed.client(door_username(ANNEX, SIDE))
    assert client.is_connected()
    try:
        for topic, payload in hostile:
            client.publish(topic, payload, qos=1, retain=not topic.endswith("events")).wait_for_publish(5)
        # The barrier: a valid status published last on the same connection, told apart by its time;
        # once it is stored, every message before it has been read.
        marker = {**VALID["status"], "ts": "2026-12-01T10:00:01.000Z"}
        client.publish(TOPICS.status(ANNEX, SIDE), json.dumps(marker), qos=1, retain=True).wait_for_publish(5)
        assert wait_for(lambda: _status_ts(site) == marker["ts"], 30)
    finally:
        client.loop_stop()
        client.disconnect()
    assert all(not a.is_failure for a in acks), "the ACL let the controller publish on its own topics"

    seats = stored(site, StoreSeats, ANNEX)
    assert seats is None or seats.value is not None, "what is stored is a valid seats payload"
    session = stored(site, LiveSession, (ANNEX, "m-9"))
    assert session is None or session.value is not None
    with site.db() as s:  # type: ignore[operator]
        stored_events = [e.body for e in s.query(EventRecord).filter_by(store=ANNEX)]
    for body in stored_events:
        assert isinstance(body["seq"], int) and isinstance(body["ts"], str) and body["door"] == SIDE

    site.as_member("m-1", "correct horse")
    for path in ("/", f"/s/{STORE}/{DOOR}", f"/s/{ANNEX}/{SIDE}", "/code", "/scan"):
        response = site.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    site.as_member("op", "operator pass")
    for path in ("/console", f"/console?store={ANNEX}", "/console?hours=1", f"/console?door={SIDE}"):
        response = site.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])


def _status_ts(site: Site) -> str | None:
    record = stored(site, DoorRecord, (ANNEX, SIDE))
    status = record.last_status if record is not None else None
    return status.ts if status is not None else None
