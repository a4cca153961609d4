"""GET /api/v1/stores: each store, its seats as its door publishes them, and who is inside."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from officepass.api.deps import AUTH_ERRORS, DB, Reader
from officepass.api.schema import StoreOut, StoresPage
from officepass.models import LiveSession, StoreRecord, StoreSeats

router = APIRouter(tags=["stores"])


@router.get("/stores", response_model=StoresPage, responses=AUTH_ERRORS)
def stores(db: DB, _token: Reader) -> StoresPage:
    seats = {row.store: row.value for row in db.execute(select(StoreSeats)).scalars()}
    inside: dict[str, list[dict[str, Any]]] = {}
    for row in db.execute(select(LiveSession).order_by(LiveSession.store, LiveSession.member)).scalars():
        if (session := row.value) is not None:
            inside.setdefault(row.store, []).append(session.to_dict())
    answer = []
    for store in db.execute(select(StoreRecord).order_by(StoreRecord.id)).scalars():
        value = seats.get(store.id)
        answer.append(StoreOut(id=store.id, name=store.name, doors=list(store.doors.get("names", [])),
                               seats=value.to_dict() if value is not None else None,
                               sessions=inside.get(store.id, [])))
    return StoresPage(stores=answer)
