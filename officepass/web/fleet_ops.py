"""The console's fleet operations (contract §11): add a door (its one-time enrollment command, shown
once) and edit a door's remote configuration (each change a new signed version, published retained;
the door's page shows what the door applied or why it refused)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from officepass.door_config import ConfigProblem, change_config, parse_setting
from officepass.enrollment import EnrollProblem, add_door
from officepass.models import DoorConfig, Enrollment
from officepass.notifier import Change
from officepass.web.guard import DB, Operator, check_csrf
from officepass.web.pages import render
from wire.fleet import REMOTE_KEYS, enroll_command

router = APIRouter(prefix="/console", dependencies=[Depends(check_csrf)])
HISTORY_ROWS = 10


def config_context(session: Session, store: str, door: str) -> dict[str, Any]:
    """What the door page shows of its remote configuration: a field per settable key (the newest
    version's value, empty where the door's file decides), the versions before, the enrollments."""
    history = list(session.execute(select(DoorConfig).filter_by(store=store, door=door)
                                   .order_by(DoorConfig.version.desc()).limit(HISTORY_ROWS)).scalars())
    current = history[0].settings if history else {}
    fields = []
    for section, keys in REMOTE_KEYS.items():
        for key in sorted(keys):
            value = current.get(section, {}).get(key)
            if isinstance(value, dict):
                text = ",".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, list):
                text = ",".join(str(v) for v in value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = "" if value is None else str(value)
            fields.append((section, key, text))
    enrollments = list(session.execute(select(Enrollment).filter_by(store=store, door=door)
                                       .order_by(Enrollment.id.desc()).limit(5)).scalars())
    return {"config_fields": fields, "config_history": history, "enrollments": enrollments}


@router.post("/doors/{store}/{door}/config")
async def edit_config(request: Request, store: str, door: str, user: Operator, session: DB) -> Response:
    """Every field at once: a filled one sets its key, an emptied one gives it back to the door's file.
    Only what differs from the newest version makes a new one."""
    form = await request.form()
    before = config_context(session, store, door)["config_fields"]
    changes: dict[str, dict[str, Any]] = {}
    try:
        for section, key, was in before:
            text = str(form.get(f"{section}.{key}", was)).strip()
            if text == was:
                continue
            changes.setdefault(section, {})[key] = parse_setting(section, key, text) if text else None
        if not changes:
            return RedirectResponse(f"/console/doors/{store}/{door}#config", status_code=303)

        def store_change() -> None:
            change_config(session, request.app.state.keys, store, door, changes, by=user.id)
            session.commit()

        await run_in_threadpool(store_change)
    except ConfigProblem as exc:
        raise HTTPException(400, str(exc)) from None
    configs = request.app.state.configs
    if configs is not None:
        configs.nudge()
    request.app.state.notifier.changed({Change.CONSOLE})
    return RedirectResponse(f"/console/doors/{store}/{door}#config", status_code=303)


@router.post("/doors")
def new_door(request: Request, store: Annotated[str, Form()], door: Annotated[str, Form()], user: Operator,
             session: DB) -> Response:
    """Register a door and show its technician's command once (the code is stored only hashed)."""
    try:
        made = add_door(session, store.strip(), door.strip(), by=user.id)
        session.commit()
    except EnrollProblem as exc:
        raise HTTPException(400, str(exc)) from None
    request.app.state.notifier.changed({Change.CONSOLE})
    base = request.app.state.base_url
    return render(request, "console_enroll.html", {"user": user, "made": made,
                                                   "command": enroll_command(base, made.code)})
