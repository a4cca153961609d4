"""Live updates by server-sent events: the vacancy board changes on the member's screen as the
doors publish, without a reload. The stream reads what the fleet consumer stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from officepass.models import StoreSeats
from officepass.web.guard import CurrentMember

router = APIRouter()
POLL_SECONDS = 1.0  # how often the stream looks at the database for a change
KEEPALIVE_SECONDS = 15.0


def _seats(request: Request) -> dict[str, str]:
    with request.app.state.sessions() as session:
        rows = session.execute(select(StoreSeats)).scalars()
        return {row.store: str(row.seats.get("symbol", "?")) for row in rows}


@router.get("/live/seats")
async def seats_stream(request: Request, user: CurrentMember) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        sent: dict[str, str] | None = None
        quiet = 0.0
        while not await request.is_disconnected():
            now = await asyncio.to_thread(_seats, request)
            if now != sent:
                sent, quiet = now, 0.0
                yield f"event: seats\ndata: {json.dumps(now, ensure_ascii=False)}\n\n"
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
