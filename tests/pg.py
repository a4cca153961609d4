"""A throwaway PostgreSQL cluster for the service's tests: initdb and pg_ctl on a free port, run as
the `postgres` user (both refuse root), in a directory removed afterwards. Never the machine's own
PostgreSQL on 5432."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hwsim.broker import free_port


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (scripts/bootstrap.sh installs postgresql)")
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="officepass-pg-"))
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()
    try:
        subprocess.run([*as_postgres, initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8"], check=True, capture_output=True)
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "start", "-o",
                        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def new_database(server: str) -> str:
    """A new, empty database in the cluster at `server` (one test's own); its URL."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"
