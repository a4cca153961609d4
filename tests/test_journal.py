"""The journal: restart restores everything, pruning keeps undelivered events, SIGKILL loses nothing."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.clock import DoorClock
from controller.core import DoorCore
from controller.decision import DoorState, Event, Session
from controller.journal import DELIVERED_RETENTION_SECONDS, Journal, JournalError, UsedCode
from tests.helpers import ROOT, code, config_doc, make_config, toml_text
from tests.rig import Relay
from wire.vocab import EventType, SessionState, Side, Source

UNLOCK = Event(EventType.UNLOCK, None, Source.BUTTON)

T = 1_800_000_000.0


def test_pragmas_and_restore(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path)
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s1 = Session("m1", SessionState.CHECKED_IN, T, T + 7200)
    s2 = Session("m2", SessionState.CHECKING_OUT, T, T + 7200, warned=True, overdue=True)
    state = DoorState.restored([s1, s2])
    check_in = Event(EventType.CHECK_IN, "m1", Source.ENTRY, None, {"deadline": T + 7200})
    written = j.commit(DoorState(), state, [check_in],
                       now=T, used_code=UsedCode(b"c" * 8, "front", T, T + 360), floor=T + 5)
    j.set_revoked(3, ["bad-1", "bad-2"])
    j.close()

    j = Journal(path)
    assert j.load_state() == state
    assert j.used_code(b"c" * 8) == UsedCode(b"c" * 8, "front", T, T + 360, None)
    assert j.revoked() == {"bad-1", "bad-2"} and j.revocation_version() == 3
    assert j.time_floor() == T + 5
    (ev,) = j.undelivered()
    assert ev.seq == written[0].seq == 1 and ev.fields == {"deadline": T + 7200}
    payload = ev.to_wire("shinjuku-3", "main").to_dict()
    assert payload["ts"] == "2027-01-15T08:00:00.000Z" and payload["deadline"] == T + 7200
    assert set(payload) >= {"id", "seq", "epoch", "ts", "store", "door", "type", "member", "source", "reason"}
    assert payload["epoch"] == j.epoch and len(j.epoch) == 12
    # a closed session is gone from the live set
    j.commit(state, DoorState.restored([s2]), [], now=T + 1)
    assert j.load_state() == DoorState.restored([s2])


def test_a_new_journal_has_a_new_epoch(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.db")
    epoch = first.epoch
    first.close()
    assert Journal(tmp_path / "j.db").epoch == epoch, "the same journal keeps its epoch"
    assert Journal(tmp_path / "other.db").epoch != epoch, "a journal made anew numbers under a new epoch"


def test_prune_keeps_undelivered_and_seq_never_goes_back(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    old = T - DELIVERED_RETENTION_SECONDS - 10
    evs = j.commit(DoorState(), DoorState(), [UNLOCK] * 3, now=old)
    j.commit(DoorState(), DoorState(), [], now=old, used_code=UsedCode(b"e" * 8, "r", old, old + 300))
    j.mark_delivered([evs[0].seq, evs[2].seq], at=old)
    assert j.prune(T) == (2, 1)
    assert [e.seq for e in j.events()] == [2], "the undelivered event stays, however old"
    assert j.used_code(b"e" * 8) is None
    j.mark_delivered([2], at=T)
    j.prune(T + DELIVERED_RETENTION_SECONDS + 1)
    assert j.events() == []
    (ev,) = j.commit(DoorState(), DoorState(), [UNLOCK], now=T)
    assert ev.seq == 4, "seq continues after everything was pruned"


def test_a_failed_write_takes_no_effect(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    j = Journal(config.storage.path)
    core = DoorCore(config, j, Relay(config).guard)
    first = core.present(code("m1", iat=int(time.time())), "front", Side.ENTRY).decision
    assert first is not None and first.ok
    # Make the database refuse writes.
    j._db.execute("PRAGMA query_only = ON")
    handled = core.present(code("m2", iat=int(time.time())), "front", Side.ENTRY)
    assert handled.decision is not None and not handled.decision.ok and not handled.decision.unlock
    assert handled.decision.reason == "journal_error"
    assert set(core.state.sessions) == {"m1"}, "state unchanged when the journal refuses"
    j._db.execute("PRAGMA query_only = OFF")
    assert [e.type for e in j.events()] == ["check_in", "unlock"]


def test_disk_full(tmp_path: Path) -> None:
    """SQLite's own size cap stands in for a full disk: the door denies, loses nothing, recovers."""
    config = make_config(tmp_path, door={"store": "shinjuku-3", "name": "main", "seats": 1000})
    j = Journal(config.storage.path)
    core = DoorCore(config, j, Relay(config).guard)
    page = j._db.execute("PRAGMA page_count").fetchone()[0]
    j._db.execute(f"PRAGMA max_page_count = {page + 2}")
    results = []
    for i in range(200):
        handled = core.present(code(f"m{i}", iat=int(time.time()), act="check_in"), "front", Side.ENTRY)
        results.append(handled.decision.reason if handled.decision else None)
    assert "journal_error" in results
    assert results[0] is None, "the first check-in fit"
    kept = [e.seq for e in j.events()]
    assert kept == list(range(1, len(kept) + 1))
    j._db.execute("PRAGMA max_page_count = 1073741823")
    j.close()
    j2 = Journal(config.storage.path)
    assert [e.seq for e in j2.events()] == kept, "nothing journaled before the disk filled is lost"


def test_newer_schema_refused(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j._db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    j.close()
    try:
        Journal(tmp_path / "j.db")
    except JournalError as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("a newer schema must be refused")


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    """120 SIGKILLs of a process deciding in a loop: integrity ok, nothing committed lost, no seq gap."""
    doc = config_doc(door={"store": "shinjuku-3", "name": "main", "seats": 1000})
    doc["credentials"]["commands_need_synced_clock"] = False  # the writer checks out by command
    doc["storage"] = {"path": str(tmp_path / "doorctl.db")}
    cfg_path = tmp_path / "door.toml"
    cfg_path.write_text(toml_text(doc))
    rng = random.Random(1234)
    reported_seqs: set[int] = set()
    used: dict[str, str] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    while kills < 120:
        proc = subprocess.Popen([sys.executable, "-m", "tests.crash_writer", str(cfg_path)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.04))
        proc.send_signal(signal.SIGKILL)
        for line in proc.stdout.read().splitlines():
            kind, value, *rest = line.split(" ", 2)  # a code may hold spaces (base45)
            if kind == "seq":
                reported_seqs.add(int(value))
            elif kind == "used":
                used[value] = rest[0]
        proc.wait()
        kills += 1
    db = sqlite3.connect(tmp_path / "doorctl.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    journal = Journal(tmp_path / "doorctl.db")
    seqs = [e.seq for e in journal.events(limit=10**9)]
    assert len(reported_seqs) > 120, "the writer made too few decisions to mean anything"
    assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap"
    assert reported_seqs <= set(seqs), "a committed event was lost"
    # Every code the writer saw accepted is still spent after the restart, and refused: `replayed`
    # while it is valid, `expired` once its 30 s are over (a slow machine takes longer than that
    # for the kills, and expiry is checked first, contract §1).
    config = make_config(tmp_path, door={"store": "shinjuku-3", "name": "main", "seats": 1000})
    core = DoorCore(config, journal, Relay(config).guard, DoorClock(journal.time_floor()))
    sample = rng.sample(sorted(used.items()), k=min(30, len(used)))
    for cti, text in sample:
        assert journal.used_code(bytes.fromhex(cti)) is not None, "a spent code was forgotten"
        handled = core.present(text, "other-reader", Side.ENTRY)
        assert handled.decision is not None and handled.decision.reason in ("replayed", "expired")
        assert handled.code is not None
        if handled.decision.reason == "expired":
            assert core.clock.now() > handled.code.exp + config.credentials.max_clock_skew_seconds
