"""GET /api/v1/events: the events feed, paged by cursor (contract §10; officepass.feed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from officepass.api.deps import AUTH_ERRORS, DB, Reader
from officepass.api.errors import ApiError, ErrorBody
from officepass.api.schema import ID_PATTERN, MEMBER_PATTERN, EventsPage
from officepass.feed import DEFAULT_PAGE, MAX_PAGE, page
from wire.vocab import EventType

router = APIRouter(tags=["events"])


@router.get("/events", response_model=EventsPage,
            responses={**AUTH_ERRORS,
                       404: {"model": ErrorBody, "description": "a cursor past the newest event: not one "
                                                                "this service gave (a database restored?)"}})
def events(db: DB, _token: Reader,
           after: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$",
                                              description="a `cursor` or `next`")] = None,
           limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
           store: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
           door: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
           type: Annotated[EventType | None, Query()] = None,
           member: Annotated[str | None, Query(pattern=MEMBER_PATTERN)] = None) -> EventsPage:
    """Every stored event in the order the service stored it. Ask again with `after=next` to get
    the ones stored since: each event comes exactly once to a client that does, including events a
    door sent late (gap repair)."""
    filters = {key: value for key, value in (("store", store), ("door", door), ("member", member),
                                             ("type", type.value if type else None)) if value is not None}
    try:
        found = page(db, after, limit, **filters)
    except ValueError as exc:
        raise ApiError(404, str(exc), "unknown_cursor") from None
    return EventsPage.model_validate({"events": found.events, "next": found.next})
