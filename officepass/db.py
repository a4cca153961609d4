"""The database: an engine by URL (SQLite file by default, PostgreSQL by URL) and its migrations."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

log = logging.getLogger("officepass.db")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def engine_for(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        _private_file(Path(engine.url.database))
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(connection: object, _record: object) -> None:
            cursor = connection.cursor()  # type: ignore[attr-defined]  # DBAPI connection
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    return engine


def _private_file(path: Path) -> None:
    """The database holds members' password hashes: created 0600 (SQLite gives its -wal and -shm
    files the same mode), and a loosened one is tightened again, with a word in the log."""
    if not path.parent.is_dir():
        raise OSError(f"{path}: the directory {path.parent} does not exist (make it, owned by the service)")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s was mode %o (readable by others): made 0600", path, mode)
        os.chmod(path, 0o600)


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (Alembic upgrade head)."""
    engine_for(url).dispose()  # a new SQLite file is made 0600 before Alembic writes to it
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def sessions(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]  # Session is the default class
    return sessionmaker(engine, expire_on_commit=False)
