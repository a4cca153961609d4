"""The journal: one SQLite file that survives a power cut at any instant (issue 2, item 6).

It holds the live sessions, the event outbox with the door's `seq`, the
used-code memory, the revocation list and the time floor. A decision and its
events are committed in one transaction before the relay may move; WAL with
`synchronous=FULL` makes a returned commit durable.

One thread owns a Journal (the reactor). Other threads that need to read, such
as the MQTT publisher, open their own Journal on the same file: WAL lets
readers run beside the writer.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.decision import DoorState, Event, Session, kept_by_journal
from wire.payloads import DoorEvent
from wire.rules import rfc3339
from wire.vocab import Alarm, EventType, SessionState, Source

log = logging.getLogger("doorctl.journal")

SCHEMA_VERSION = 1
DELIVERED_RETENTION_SECONDS = 30 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    member TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('checked_in', 'checking_out')),
    checked_in_at REAL NOT NULL,
    deadline REAL NOT NULL,
    warned INTEGER NOT NULL,
    overdue INTEGER NOT NULL
);
-- AUTOINCREMENT: seq never goes back, even after pruning removes the newest rows.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    member TEXT,
    source TEXT NOT NULL,
    reason TEXT,
    fields TEXT NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_undelivered ON events (seq) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS used_codes (
    cti BLOB PRIMARY KEY,
    reader TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS used_codes_expiry ON used_codes (expires_at);
CREATE TABLE IF NOT EXISTS revoked (
    member TEXT PRIMARY KEY
);
"""


class JournalError(Exception):
    """The journal could not be written: nothing of the attempted change took effect."""


def _columns(db: sqlite3.Connection) -> dict[str, list[tuple[str, str]]]:
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%' AND name != 'revoked_next'")]
    return {t: [(c[1], c[2].upper()) for c in db.execute(f"PRAGMA table_info('{t}')")] for t in tables}


def _expected_columns() -> dict[str, list[tuple[str, str]]]:
    """The tables and columns _SCHEMA makes: the one definition, read back from a scratch database."""
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.executescript(_SCHEMA)
        return _columns(scratch)
    finally:
        scratch.close()


def integrity_problem(db: sqlite3.Connection) -> str | None:
    """Why this journal cannot be trusted (a damaged file, a table that is not ours), or None."""
    found = db.execute("PRAGMA quick_check").fetchone()
    if found is None or found[0] != "ok":
        return f"the database is damaged ({found[0] if found else 'no answer'}): restore or remove it"
    have = _columns(db)
    for table, columns in _expected_columns().items():
        if table in have and have[table] != columns:
            return (f"table {table} is not the journal's ({', '.join(n for n, _ in have[table])}; "
                    f"expected {', '.join(n for n, _ in columns)})")
    return None


def check_journal_file(path: Path) -> str | None:
    """`doctor` with the daemon stopped: the file's integrity, read only (None when fine or absent)."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return f"cannot open it: {exc}"
    try:
        return integrity_problem(db)
    except sqlite3.Error as exc:
        return f"cannot read it: {exc}"
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class UsedCode:
    cti: bytes
    reader: str
    accepted_at: float
    expires_at: float
    result: dict[str, Any] | None = None  # a command's first answer, for redeliveries


@dataclass(frozen=True, slots=True)
class JournaledEvent:
    seq: int
    id: str
    ts: float
    type: str
    member: str | None
    source: str
    reason: str | None
    fields: dict[str, Any]
    delivered: bool = False
    epoch: str = ""

    def to_wire(self, store: str, door: str) -> DoorEvent:
        """The event as the contract (§4) publishes it, with the journal's `epoch`: a journal made
        anew (lost disk, replaced card) starts `seq` at 1 again under a new epoch, so a consumer can
        tell a restart of the numbering from lost events."""
        return DoorEvent(id=self.id, seq=self.seq, epoch=self.epoch, ts=rfc3339(self.ts), store=store,
                         door=door, type=EventType(self.type), member=self.member, source=Source(self.source),
                         reason=self.reason, fields=self.fields)


def _write_revoked(db: sqlite3.Connection, version: int, members: Iterable[str]) -> None:
    db.execute("DELETE FROM revoked")
    db.executemany("INSERT OR IGNORE INTO revoked VALUES (?)", [(m,) for m in members])
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('revocation_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (json.dumps(version),),
    )


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Why the file cannot be used, while the door runs on a stand-in (see `or_stand_in`).
        self.unavailable: str | None = None
        self._db: sqlite3.Connection
        self._identity: tuple[int, int] | None = None
        self._open()

    @classmethod
    def or_stand_in(cls, path: str | Path) -> Journal:
        """The journal at `path`, or, when it cannot be opened (read-only or failing card, no space
        for a new one), an empty in-memory stand-in that refuses every write: the door runs degraded
        (journal_error, codes refused, exit button and fire working) and `reopen` retries the file."""
        try:
            return cls(path)
        except JournalError as exc:
            journal = cls.__new__(cls)
            journal.path = Path(path)
            journal.unavailable = str(exc)
            journal._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            for statement in filter(str.strip, _SCHEMA.split(";")):
                journal._db.execute(statement)
            journal.epoch = ""
            journal._identity = None
            return journal

    def reopen(self) -> bool:
        """For a stand-in: try the real file again. True once it is open (the stand-in is dropped)."""
        if self.unavailable is None:
            return False
        stand_in, reason = self._db, self.unavailable
        self.unavailable = None
        try:
            self._open()
        except JournalError as exc:
            self._db, self.unavailable = stand_in, str(exc) or reason
            return False
        stand_in.close()
        return True

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly
            # what the code says it is.
            # check_same_thread off: the reactor owns the journal, but may run on a thread other than
            # the one that opened it. One thread at a time uses a Journal; readers open their own.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=10.0, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            problem = integrity_problem(self._db)
            if problem is not None:
                raise JournalError(f"{self.path}: {problem}")
            with self._transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    self._set_meta("schema_version", SCHEMA_VERSION)
                elif int(row[0]) > SCHEMA_VERSION:
                    raise JournalError(
                        f"{self.path}: journal schema {row[0]} is newer than this doorctl ({SCHEMA_VERSION})"
                    )
                epoch = self._meta("epoch", None)
                if epoch is None:
                    epoch = uuid.uuid4().hex[:12]
                    self._set_meta("epoch", epoch)
                    log.warning("new journal %s (epoch %s): event seq starts at 1", self.path, epoch)
            self.epoch: str = epoch
            self._identity = self._file_identity()
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"{self.path}: cannot open journal ({exc})") from exc

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def check_identity(self) -> None:
        """Raise JournalError when the file we write is no longer the one at our path (deleted or
        replaced under us): writes would go to a file nobody will ever read again. A stand-in is
        never the file."""
        if self.unavailable is not None:
            raise JournalError(self.unavailable)
        if self._file_identity() != self._identity:
            raise JournalError(f"journal file {self.path} was removed or replaced while the door ran")

    def restore_file(self) -> bool:
        """After the file was deleted under us: write everything we still hold (the open database)
        back to the path, and continue on that copy. False when something else now sits there."""
        if self.path.exists() or self.unavailable is not None:
            return False
        try:
            self._db.execute("VACUUM INTO ?", (str(self.path),))
            self._db.close()
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot restore the journal at {self.path}: {exc}") from exc
        self._identity = self._file_identity()
        return True

    def close(self) -> None:
        self._db.close()

    # --- transactions -----------------------------------------------------------------

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            if exc_type is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def _transaction(self) -> Journal._Tx:
        if self.unavailable is not None:
            raise JournalError(self.unavailable)  # a stand-in takes no write
        return Journal._Tx(self._db)

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def _meta(self, key: str, default: Any) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # --- the decision commit ----------------------------------------------------------

    def commit(
        self,
        before: DoorState,
        after: DoorState,
        events: Iterable[Event],
        *,
        now: float,
        used_code: UsedCode | None = None,
        floor: float | None = None,
    ) -> list[JournaledEvent]:
        """Write one decision atomically: session changes, events, the used code, the time floor.

        Raises JournalError (with nothing written) when the disk or database refuses.
        """
        written: list[JournaledEvent] = []
        self.check_identity()
        try:
            with self._transaction() as db:
                kept = kept_by_journal(after)
                if not kept.same_conditions(kept_by_journal(before)):
                    self._set_meta("alarms", sorted(kept.alarms))
                    self._set_meta("faulty_readers", sorted(kept.faulty_readers))
                    self._set_meta("fire", kept.fire)
                for member in before.sessions:
                    if member not in after.sessions:
                        db.execute("DELETE FROM sessions WHERE member = ?", (member,))
                for member, new in after.sessions.items():
                    if before.sessions.get(member) != new:
                        db.execute(
                            "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                            (member, new.state, new.checked_in_at, new.deadline, new.warned, new.overdue),
                        )
                for ev in events:
                    written.append(self._insert_event(db, ev, now))
                if used_code is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO used_codes VALUES (?, ?, ?, ?, ?)",
                        (
                            used_code.cti,
                            used_code.reader,
                            used_code.accepted_at,
                            used_code.expires_at,
                            None if used_code.result is None else json.dumps(used_code.result),
                        ),
                    )
                if floor is not None:
                    self._set_meta("time_floor", floor)
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc
        return written

    def _insert_event(self, db: sqlite3.Connection, ev: Event, now: float) -> JournaledEvent:
        event_id = str(uuid.uuid4())
        fields = dict(ev.fields)
        cur = db.execute(
            "INSERT INTO events (id, ts, type, member, source, reason, fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, now, str(ev.type), ev.member, str(ev.source), ev.reason, json.dumps(fields)),
        )
        seq = cur.lastrowid
        if seq is None:
            raise sqlite3.OperationalError("the events table gave no seq")
        return JournaledEvent(seq, event_id, now, ev.type, ev.member, ev.source, ev.reason, fields,
                              epoch=self.epoch)

    # --- restoring --------------------------------------------------------------------

    def load_state(self) -> DoorState:
        """Sessions, the alarms still standing, faulty readers and the fire hold, as last committed."""
        rows = self._db.execute(
            "SELECT member, state, checked_in_at, deadline, warned, overdue FROM sessions"
        ).fetchall()
        sessions = [Session(m, SessionState(st), cin, dl, bool(w), bool(o)) for m, st, cin, dl, w, o in rows]
        alarms = frozenset(Alarm(a) for a in self._meta("alarms", []) if a in Alarm.__members__.values())
        readers = frozenset(str(r) for r in self._meta("faulty_readers", []))
        return DoorState.restored(sessions, alarms, readers, bool(self._meta("fire", False)))

    def time_floor(self) -> float:
        return float(self._meta("time_floor", 0.0))

    def save_floor(self, floor: float) -> None:
        """Store the door clock's floor as it is: it may come down when a synchronized clock says so."""
        try:
            self.check_identity()
            with self._transaction():
                self._set_meta("time_floor", floor)
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc

    # --- used codes -------------------------------------------------------------------

    def used_code(self, cti: bytes) -> UsedCode | None:
        row = self._db.execute(
            "SELECT cti, reader, accepted_at, expires_at, result FROM used_codes WHERE cti = ?", (cti,)
        ).fetchone()
        if row is None:
            return None
        return UsedCode(row[0], row[1], row[2], row[3], None if row[4] is None else json.loads(row[4]))

    # --- revocation -------------------------------------------------------------------

    def revoked(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._db.execute("SELECT member FROM revoked"))

    def revocation_version(self) -> int | None:
        version = self._meta("revocation_version", None)
        return None if version is None else int(version)

    def set_revoked(self, version: int, members: Iterable[str]) -> None:
        try:
            with self._transaction() as db:
                _write_revoked(db, version, members)
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc

    # A long list is written in steps, so the reactor that owns this journal serves door inputs
    # between them: staged into revoked_next, then swapped in by renaming (one small transaction).

    def stage_revocation(self, members: Iterable[str], *, first: bool) -> None:
        """Add members to the list being staged (`first`: start it anew)."""
        try:
            with self._transaction() as db:
                if first:
                    db.execute("DROP TABLE IF EXISTS revoked_next")
                    db.execute("CREATE TABLE revoked_next (member TEXT PRIMARY KEY)")
                db.executemany("INSERT OR IGNORE INTO revoked_next VALUES (?)", [(m,) for m in members])
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc

    def finish_revocation(self, version: int) -> None:
        """The staged list becomes the list, with its version, atomically."""
        try:
            with self._transaction() as db:
                db.execute("DROP TABLE revoked")
                db.execute("ALTER TABLE revoked_next RENAME TO revoked")
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('revocation_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (json.dumps(version),),
                )
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc

    # --- outbox -----------------------------------------------------------------------

    def undelivered(self, after_seq: int = 0, limit: int = 500) -> list[JournaledEvent]:
        rows = self._db.execute(
            "SELECT seq, id, ts, type, member, source, reason, fields FROM events "
            "WHERE delivered_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [self._event(r, delivered=False) for r in rows]

    def events(self, after_seq: int = 0, limit: int = 1000) -> list[JournaledEvent]:
        rows = self._db.execute(
            "SELECT seq, id, ts, type, member, source, reason, fields, delivered_at FROM events "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [self._event(r, delivered=r[8] is not None) for r in rows]

    def events_between(self, first: int, last: int) -> list[JournaledEvent]:
        """The events with first <= seq <= last that the journal still holds, in seq order."""
        rows = self._db.execute(
            "SELECT seq, id, ts, type, member, source, reason, fields, delivered_at FROM events "
            "WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (first, last),
        ).fetchall()
        return [self._event(r, delivered=r[8] is not None) for r in rows]

    def recent_events(self, limit: int = 20) -> list[JournaledEvent]:
        rows = self._db.execute(
            "SELECT seq, id, ts, type, member, source, reason, fields, delivered_at FROM events "
            "ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._event(r, delivered=r[8] is not None) for r in reversed(rows)]

    def _event(self, row: tuple[Any, ...], *, delivered: bool) -> JournaledEvent:
        seq, event_id, ts, type_, member, source, reason, fields = row[:8]
        return JournaledEvent(seq, event_id, ts, type_, member, source, reason, json.loads(fields), delivered,
                              self.epoch)

    def mark_delivered(self, seqs: Iterable[int], at: float) -> None:
        try:
            with self._transaction() as db:
                db.executemany(
                    "UPDATE events SET delivered_at = ? WHERE seq = ? AND delivered_at IS NULL",
                    [(at, s) for s in seqs],
                )
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc

    def backlog(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM events WHERE delivered_at IS NULL").fetchone()[0])

    def last_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return 0 if row is None else int(row[0])

    # --- housekeeping -----------------------------------------------------------------

    def prune(self, now: float) -> tuple[int, int]:
        """Drop delivered events past retention and used codes past expiry.

        Undelivered events are never dropped, however old.
        """
        try:
            with self._transaction() as db:
                events = db.execute(
                    "DELETE FROM events WHERE delivered_at IS NOT NULL AND ts < ?",
                    (now - DELIVERED_RETENTION_SECONDS,),
                ).rowcount
                codes = db.execute("DELETE FROM used_codes WHERE expires_at < ?", (now,)).rowcount
        except sqlite3.Error as exc:
            raise JournalError(f"journal write failed: {exc}") from exc
        return events, codes

    def integrity_ok(self) -> bool:
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
