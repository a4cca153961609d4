"""Live updates by server-sent events: pages change as the doors publish, without a reload. Each
stream waits for the instance's notifier (officepass.notifier) to say its topic changed, then sends
the snapshot of what was stored when it differs from the last one sent.

- `/live/seats`: every store's vacancy symbol (the member's store list).
- `/live/door/{store}/{door}`: that door's standing alarms (a member's page after a press: an
  `unlock_fault` turns it into the unlock-trouble screen).
- `/live/console`: a digest of what the console shows (the console reloads its tables).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from officepass.models import (
    AlarmRecord,
    DoorRecord,
    EventRecord,
    LiveSession,
    ManualCheckout,
    Member,
    StoreRecord,
    StoreSeats,
)
from officepass.notifier import Change, FleetNotifier
from officepass.web.guard import StreamMember, StreamOperator
from officepass.web.words import VACANCY

router = APIRouter()
KEEPALIVE_SECONDS = 15.0
# After a change, a page waits this long before it reads: a burst of messages (a fleet back from an
# outage) is one read and one update, not hundreds.
SETTLE_SECONDS = 0.5


class Snapshots:
    """One read of the database per snapshot and change, however many pages watch it: every open
    stream of a kind shares the newest snapshot, read again only once the notifier says its topic
    changed. No stream holds a database session while it waits; a read takes one from the pool for
    its query only."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions
        self._taken: dict[tuple[Any, ...], tuple[int, Any]] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    async def get(self, key: tuple[Any, ...], version: int, read: Callable[[Session], Any]) -> Any:
        taken = self._taken.get(key)
        if taken is not None and taken[0] == version:
            return taken[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            taken = self._taken.get(key)  # another stream may have read it meanwhile
            if taken is not None and taken[0] == version:
                return taken[1]
            value = await asyncio.to_thread(self._read, read)
            self._taken[key] = (version, value)
            return value

    def _read(self, read: Callable[[Session], Any]) -> Any:
        with self._sessions() as session:
            return read(session)


def stream(request: Request, name: str, change: Change, key: tuple[Any, ...],
           read: Callable[[Session], Any]) -> StreamingResponse:
    """An event stream that sends `read`'s JSON snapshot as event `name` now and whenever the
    notifier says `change` happened and the snapshot differs from the last one sent."""
    snapshots: Snapshots = request.app.state.snapshots
    notifier: FleetNotifier = request.app.state.notifier

    async def events() -> AsyncIterator[str]:
        sent: Any = None
        while not await request.is_disconnected():
            version = notifier.version(change)
            now = await snapshots.get(key, version, read)
            if now != sent:
                sent = now
                yield f"event: {name}\ndata: {json.dumps(now, ensure_ascii=False)}\n\n"
            if await notifier.wait(change, version, KEEPALIVE_SECONDS):
                await asyncio.sleep(SETTLE_SECONDS)
            else:
                yield ": keepalive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _seats(session: Session) -> dict[str, dict[str, Any]]:
    """Each store's symbol and the guide's words for it, so the list's words follow the symbol."""
    rows = session.execute(select(StoreSeats)).scalars()
    return {row.store: {"symbol": seats.symbol.value, "words": list(VACANCY[seats.symbol])}
            for row in rows if (seats := row.value) is not None}


def door_alarms(session: Session, store: str, door: str) -> list[str]:
    record = session.get(DoorRecord, (store, door))
    status = record.last_status if record is not None else None
    return sorted(a.value for a in status.alarms) if status is not None else []


def _console_digest(session: Session) -> str:
    """Changes whenever anything the console shows changes; cheap enough to ask every second."""
    parts: list[Any] = [
        session.execute(select(func.count(), func.max(EventRecord.ts)).select_from(EventRecord)).one(),
        session.execute(select(func.count(), func.max(AlarmRecord.id))
                        .where(AlarmRecord.acked_by.is_(None))).one(),
        session.execute(select(func.count()).where(AlarmRecord.cleared.is_not(None))).scalar_one(),
        session.execute(select(func.count(), func.max(Member.created)).where(Member.disabled)).one(),
        session.execute(select(func.count()).select_from(Member)).scalar_one(),
        session.execute(select(func.count()).select_from(ManualCheckout)).scalar_one(),
        [(d.store, d.door, d.online, d.status) for d in session.execute(select(DoorRecord)).scalars()],
        [(s.store, s.seats) for s in session.execute(select(StoreSeats)).scalars()],
        [(s.store, s.member, s.session) for s in session.execute(select(LiveSession)).scalars()],
    ]
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


@router.get("/live/seats")
async def seats_stream(request: Request, user: StreamMember) -> StreamingResponse:
    return stream(request, "seats", Change.SEATS, ("seats",), _seats)


@router.get("/live/door/{store}/{door}")
async def door_stream(request: Request, store: str, door: str, user: StreamMember) -> StreamingResponse:
    """Only a door the service knows: a member's page watches the door it pressed at."""
    with request.app.state.sessions() as session:
        record = session.get(StoreRecord, store)
        if record is None or door not in record.doors.get("names", []):
            raise HTTPException(404, "no such door")
    return stream(request, "alarms", Change.DOORS, ("alarms", store, door),
                  lambda session: door_alarms(session, store, door))


@router.get("/live/console")
async def console_stream(request: Request, user: StreamOperator) -> StreamingResponse:
    return stream(request, "console", Change.CONSOLE, ("console",), _console_digest)
