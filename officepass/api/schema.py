"""What the API answers and accepts, as the OpenAPI document describes it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wire.codes import MEMBER_RE

ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"  # store, door and member ids (contract §1, §4)
MEMBER_PATTERN = f"^{MEMBER_RE.pattern}$"


class EventOut(BaseModel):
    """A door's event (contract §4) as it sent it (every field kept, some by type), plus `received`
    and `cursor`."""

    model_config = ConfigDict(extra="allow")
    id: str
    store: str
    door: str
    seq: int
    type: str
    ts: str
    member: str | None = None
    received: str = Field(description="when the service stored it (RFC 3339 UTC)")
    cursor: str = Field(description="ask with after=this to get the events stored after it")


class EventsPage(BaseModel):
    events: list[EventOut]
    next: str = Field(description="the cursor to ask with next (the same as `after` when nothing is new)")


class DoorOut(BaseModel):
    store: str
    door: str
    online: bool
    last_seen: str | None
    status: dict[str, Any] | None = Field(description="the door's last status message (contract §4)")
    gaps: list[tuple[str, int, int]] = Field(description="[epoch, first, last]: seqs missing, being repaired")
    lost: list[tuple[str, int, int]] = Field(description="[epoch, first, last]: seqs the door no longer has")


class DoorsPage(BaseModel):
    doors: list[DoorOut]


class StoreOut(BaseModel):
    id: str
    name: str
    doors: list[str]
    seats: dict[str, Any] | None = Field(description="the door's retained seats (§4); null before any")
    sessions: list[dict[str, Any]] = Field(description="the live sessions, as the door publishes them (§4)")


class StoresPage(BaseModel):
    stores: list[StoreOut]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=MEMBER_PATTERN, description="the member id, the code's `sub`")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")
    password: str | None = Field(default=None, min_length=8, max_length=1024,
                                 description="omit for a member who logs in elsewhere")

    @field_validator("name", "password")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid Unicode text (a lone surrogate)") from None
        return value


class MemberOut(BaseModel):
    id: str
    name: str
    disabled: bool
    created: str
