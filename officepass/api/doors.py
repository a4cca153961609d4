"""GET /api/v1/doors: every door, online or not, its last status, its open gaps and lost ranges."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from officepass.api.deps import AUTH_ERRORS, DB, Reader
from officepass.api.schema import DoorOut, DoorsPage
from officepass.feed import utc_text
from officepass.models import DoorRecord, SeqGap, SeqLost

router = APIRouter(tags=["doors"])


@router.get("/doors", response_model=DoorsPage, responses=AUTH_ERRORS)
def doors(db: DB, _token: Reader) -> DoorsPage:
    ranges: dict[str, dict[tuple[str, str], list[tuple[str, int, int]]]] = {"gaps": {}, "lost": {}}
    for kind, model in (("gaps", SeqGap), ("lost", SeqLost)):
        rows = db.execute(select(model.store, model.door, model.epoch, model.first, model.last)
                          .order_by(model.store, model.door, model.epoch, model.first))
        for store, door, epoch, first, last in rows:
            ranges[kind].setdefault((store, door), []).append((epoch, first, last))
    answer = []
    for record in db.execute(select(DoorRecord).order_by(DoorRecord.store, DoorRecord.door)).scalars():
        status = record.last_status
        key = (record.store, record.door)
        answer.append(DoorOut(store=record.store, door=record.door, online=record.online,
                              last_seen=utc_text(record.last_seen),
                              status={**status.extra, **status.to_dict()} if status is not None else None,
                              gaps=ranges["gaps"].get(key, []), lost=ranges["lost"].get(key, [])))
    return DoorsPage(doors=answer)
