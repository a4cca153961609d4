"""Door releases (contract §11): the files doors download, and the console's rollout.

`GET /releases/{version}/manifest` and `/releases/{version}/files/{name}` are public (the door checks
the manifest's signature and every file's hash; nothing here is secret) and serve only what the
manifest names. `/console/releases` lists releases and each door's version and update state, and
rolls a release out: to one door first, then to the rest. A rollout is a remote configuration
(`update.release`), so the door takes it like any other: signed, retained, at a quiet moment.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select

from officepass.door_config import change_config, newest
from officepass.models import DoorRecord, ReleaseRecord, StoreRecord
from officepass.notifier import Change
from officepass.releases import release_file, releases_list
from officepass.web.guard import DB, Operator, check_csrf
from officepass.web.pages import render
from wire.fleet import RELEASES_PATH

router = APIRouter()


@router.get(RELEASES_PATH + "/{version}/manifest")
def manifest(version: str, session: DB) -> Response:
    record = session.get(ReleaseRecord, version)
    if record is None:
        raise HTTPException(404, f"no release {version}")
    return PlainTextResponse(record.manifest + "\n")


@router.get(RELEASES_PATH + "/{version}/files/{name}")
def release_download(request: Request, version: str, name: str, session: DB) -> Response:
    path = release_file(request.app.state.releases_dir, session, version, name)
    if path is None or name == "manifest":
        raise HTTPException(404, f"no file {name} in release {version}")
    return FileResponse(path, media_type="application/octet-stream", filename=name)


@router.get("/console/releases")
def releases_page(request: Request, user: Operator, session: DB) -> Response:
    doors = session.execute(select(DoorRecord).order_by(DoorRecord.store, DoorRecord.door)).scalars().all()
    wanted = {(d.store, d.door): _wanted(session, d.store, d.door) for d in doors}
    return render(request, "console_releases.html", {"user": user, "releases": releases_list(session),
                                                     "doors": doors, "wanted": wanted})


def _wanted(session: DB, store: str, door: str) -> str | None:
    current = newest(session, store, door)
    value = (current.settings.get("update", {}) if current else {}).get("release")
    return str(value) if value is not None else None


@router.post("/console/releases/{version}/rollout", dependencies=[Depends(check_csrf)])
def rollout(request: Request, version: str, user: Operator, session: DB,
            door: Annotated[str, Form()] = "", rest: Annotated[str, Form()] = "") -> Response:
    """`door` (store/door): that one door first; `rest`: every other door not yet asked for it."""
    if session.get(ReleaseRecord, version) is None:
        raise HTTPException(404, f"no release {version}")
    if door:
        store, _, name = door.partition("/")
        chosen = [(store, name)]
    elif rest:
        chosen = [(s.id, d) for s in session.execute(select(StoreRecord)).scalars()
                  for d in s.doors.get("names", []) if _wanted(session, s.id, d) != version]
    else:
        raise HTTPException(400, "choose a door, or the rest")
    for store, name in chosen:
        change_config(session, request.app.state.keys, store, name, {"update": {"release": version}},
                      by=user.id)
    session.commit()
    configs = request.app.state.configs
    if configs is not None:
        configs.nudge()
    request.app.state.notifier.changed({Change.CONSOLE})
    return RedirectResponse("/console/releases", status_code=303)
