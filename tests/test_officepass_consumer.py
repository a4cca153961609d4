"""The fleet consumer against a real mosquitto and a real `doorctl run --sim`: two service instances
split the events through the shared subscription and store each once; the Last Will marks the door
offline."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from sqlalchemy import func, select

from officepass.connection import ServiceConnection
from officepass.consumer import FleetConsumer
from officepass.db import engine_for, migrate, sessions
from officepass.fleet import gaps
from officepass.models import DoorRecord, EventRecord
from tests.closed_broker import ClosedBroker, identities_for
from tests.helpers import config_doc, toml_text
from tests.pg import postgres_cluster
from tests.procs import BoardProcess, DoorProcess
from tests.rig import wait_for
from wire.rules import DEFAULT_PREFIX


def test_two_instances_store_every_event_once_and_see_the_door_go(tmp_path: Path) -> None:
    closed = ClosedBroker(tmp_path, identities_for({"shinjuku-3": ["main"]}, instances=("a", "b")))
    # Several instances share a PostgreSQL (SQLite serves one).
    cluster = postgres_cluster()
    url = cluster.__enter__()
    migrate(url)
    db = sessions(engine_for(url))
    connections = [ServiceConnection(a.host, a.port, a.credentials)
                   for a in (closed.service_access("a"), closed.service_access("b"))]
    consumers = [FleetConsumer(db, connection, DEFAULT_PREFIX) for connection in connections]
    for consumer, connection in zip(consumers, connections, strict=True):
        consumer.start()
        assert connection.start()
    doc = config_doc(lock={"relay_pin": "GPIO17", "exit_button_pin": "GPIO22", "unlock_seconds": 0.2},
                     mqtt=closed.door_mqtt("shinjuku-3", "main"))
    doc["storage"] = {"path": str(tmp_path / "doorctl.db")}
    config = tmp_path / "door.toml"
    config.write_text(toml_text(doc))
    board = BoardProcess(config, tmp_path / "sim.sock")
    door = DoorProcess(config, board.socket_path)
    try:
        def count(*where: object) -> int:
            with db() as s:
                query = select(func.count()).select_from(EventRecord).where(*where)
                return int(s.execute(query).scalar_one())

        def online() -> bool | None:
            with db() as s:
                record = s.get(DoorRecord, ("shinjuku-3", "main"))
                return None if record is None else record.online

        assert wait_for(lambda: online() is True, 15), "the retained status arrived"
        for _ in range(12):
            board.press()
            time.sleep(0.3)
        assert wait_for(lambda: count(EventRecord.type == "unlock") >= 12, 20)
        assert all(c.drained(10) for c in consumers)
        with db() as s:
            seqs = sorted(s.execute(select(EventRecord.seq)).scalars())
            assert seqs == list(range(1, len(seqs) + 1)), "each event once, none missing"
            assert gaps(s, "shinjuku-3", "main") == []
        assert all(c.stored["events"] > 0 for c in consumers), "the shared subscription split the events"
        assert sum(c.stored["events"] for c in consumers) == len(seqs)
        door.kill(signal.SIGKILL)
        assert wait_for(lambda: online() is False, 30), "the Last Will says offline"
    finally:
        door.stop()
        board.close()
        for consumer, connection in zip(consumers, connections, strict=True):
            connection.stop()
            consumer.stop()
        closed.stop()
        cluster.__exit__(None, None, None)
