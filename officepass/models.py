"""The service's tables, SQLAlchemy 2 typed ORM. Alembic migrations (migrations/) create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wire.payloads import DoorStatus, Seats, SessionInfo, WireError, status_from_dict


def stored_time(ts: datetime) -> datetime:
    """A time read back from a DateTime(timezone=True) column: aware, in UTC. SQLite gives it back
    naive (its UTC digits), PostgreSQL aware."""
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def time_bound(ts: datetime) -> datetime:
    """A time to compare stored times with, in a query: in UTC, as they are stored (SQLite keeps a
    bound's digits and drops its zone, so a Tokyo midnight would be compared as a UTC one)."""
    return ts.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


class DoorRecord(Base):
    """A door as the fleet sees it: its retained status, online or not (Last Will), last seen."""

    __tablename__ = "doors"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    door: Mapped[str] = mapped_column(String(64), primary_key=True)
    online: Mapped[bool]
    status: Mapped[dict[str, Any]]
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def last_status(self) -> DoorStatus | None:
        """The door's last full status, typed; None before the first one (or for a row the wire
        no longer reads): the consumer stores only what validated, pages read only through this."""
        try:
            parsed = status_from_dict(self.status)
        except WireError:
            return None
        return parsed if isinstance(parsed, DoorStatus) else None


class StoreSeats(Base):
    """A store's retained seats (contract §4): the door decides, the service shows."""

    __tablename__ = "store_seats"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    seats: Mapped[dict[str, Any]]
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def value(self) -> Seats | None:
        try:
            return Seats.from_dict(self.seats)
        except WireError:
            return None


class LiveSession(Base):
    """A member's live session at a store, from the door's retained `sessions/{member}`."""

    __tablename__ = "live_sessions"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    member: Mapped[str] = mapped_column(String(64), primary_key=True)
    session: Mapped[dict[str, Any]]

    @property
    def value(self) -> SessionInfo | None:
        try:
            return SessionInfo.from_dict(self.session)
        except WireError:
            return None


class EventRecord(Base):
    """One door event, stored once by its `id` however often it arrives."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("store", "door", "epoch", "seq", name="events_door_seq"),
        Index("events_by_time", "store", "door", "ts"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    door: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    member: Mapped[str | None] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[dict[str, Any]]
    # The API's feed (contract §10): the order the service stored events in, without holes, in
    # commit order across instances (taken from FeedCounter inside the storing transaction), and
    # when. The cursor of `GET /api/v1/events` and of every webhook is a position.
    position: Mapped[int] = mapped_column(Integer, unique=True)
    received: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedCounter(Base):
    """The last feed position given out (one row). Storing events updates it first thing in the
    transaction, so its row lock orders the writers: positions become visible in order, and a reader
    that sees a position sees every lower one."""

    __tablename__ = "feed_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    position: Mapped[int] = mapped_column(Integer)


class SeqGap(Base):
    """Seqs a door's numbering skipped (so far): [first, last], between the lowest and highest
    seq stored for that door and epoch. Shrinks and splits as late events fill it."""

    __tablename__ = "seq_gaps"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    door: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32), primary_key=True)
    first: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
    # Gap repair (contract §4 `replay`): when the door was last asked for this range, how often.
    asked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SeqLost(Base):
    """A range a door reported `missing` in its replay result: gone for good (older than its journal
    keeps, or a journal made anew). Shown to operators, never asked for again."""

    __tablename__ = "seq_lost"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    door: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32), primary_key=True)
    first: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)
    reported: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SeqRange(Base):
    """The lowest and highest seq stored for a door's epoch. Its row is locked while an event of
    that door is stored (SELECT ... FOR UPDATE), so service instances splitting the events keep
    the gaps right."""

    __tablename__ = "seq_ranges"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    door: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32), primary_key=True)
    low: Mapped[int] = mapped_column(Integer)
    high: Mapped[int] = mapped_column(Integer)


class Member(Base):
    """A pass member (or an operator of the console)."""

    __tablename__ = "members"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the code's `sub`
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    role: Mapped[str] = mapped_column(String(16))  # member | operator
    disabled: Mapped[bool]
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StoreRecord(Base):
    """A store: its doors, and what the member page says of it (usable areas, rules)."""

    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    doors: Mapped[dict[str, Any]]  # {"names": [...]}
    areas: Mapped[str] = mapped_column(Text)
    rules: Mapped[str] = mapped_column(Text)


class Revocation(Base):
    """Each revocation list published (contract §4): the version rises with every disable."""

    __tablename__ = "revocations"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    members: Mapped[dict[str, Any]]  # {"ids": [...]}
    published: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlarmRecord(Base):
    """An alarm of a door, from its raising to its acknowledgement. It stays on the console until an
    operator acknowledges it, even after the door cleared it: someone should know it happened."""

    __tablename__ = "alarms"
    __table_args__ = (Index("alarms_open", "store", "door", "kind", "cleared"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(String(64))
    door: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # a door alarm, relay_watchdog, or offline
    raised: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cleared: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mailed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # support was told


class ManualCheckout(Base):
    """An operator's checkout of a member: who did it, why, and what the door answered."""

    __tablename__ = "manual_checkouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(String(64))
    door: Mapped[str] = mapped_column(String(64))
    member: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answer: Mapped[dict[str, Any]]  # the door's answer, or {"ok": false, "reason": "no_answer"}


class WebSession(Base):
    """A member's login (the cookie carries only its id): ended by logout, a password change or a
    disable, and by idle time; a copied cookie of an ended one opens nothing."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    member: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiToken(Base):
    """An integrator's API token (contract §10): only its SHA-256 is kept (the token is 256 random
    bits, so a slow hash would add nothing); shown once, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the token's public part
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))  # read | members
    secret_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Webhook(Base):
    """A URL that receives the stored events of some types (contract §10), signed with its secret
    (kept: the service signs with it). `position`: the feed position handed to deliveries so far."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    types: Mapped[dict[str, Any]]  # {"types": [...]}
    secret: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookDelivery(Base):
    """One event owed to one webhook, until a 2xx answer (or 24 h of retries). `due` is when it is next
    tried; a sender leases it by moving `due` ahead before it posts, so instances share the work."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook", "event", name="deliveries_once"),
                      Index("deliveries_due", "done", "due"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(default=False)
    delivered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    gave_up: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Enrollment(Base):
    """A one-time enrollment code for one door (contract §11): who made it, until when, and who used
    it (the door's key, where from, when)."""

    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the code
    store: Mapped[str] = mapped_column(String(64))
    door: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_from: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the client's address
    key_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the door's public key


class DoorIdentity(Base):
    """A door's broker identity as enrollment handed it out: the live one has no `revoked`; enrolling
    the door again (a replaced Pi) revokes the one before."""

    __tablename__ = "door_identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(String(64))
    door: Mapped[str] = mapped_column(String(64))
    enrollment: Mapped[int] = mapped_column(Integer)
    key_sha256: Mapped[str] = mapped_column(String(64))
    certificate_serial: Mapped[str] = mapped_column(String(64))
    issued: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("door_identities_door", "store", "door"),)


class DoorConfig(Base):
    """A door's remote configuration (contract §11), every version kept: the signed document is what
    is published (retained), the same bytes from every instance."""

    __tablename__ = "door_configs"

    store: Mapped[str] = mapped_column(String(64), primary_key=True)
    door: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    settings: Mapped[dict[str, Any]]  # {section: {key: value}}
    document: Mapped[str] = mapped_column(Text)  # OPC1:...
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))


class ReleaseRecord(Base):
    """A door release (contract §11): its signed manifest; the files are in `[service] releases`."""

    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    manifest: Mapped[str] = mapped_column(Text)  # OPU1:...
    targets: Mapped[dict[str, Any]]  # {"names": [...]}
    published: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str] = mapped_column(String(64))
