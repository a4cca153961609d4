"""Alembic's environment: the URL comes from the caller (officepass.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from officepass.models import Base

url = context.config.get_main_option("sqlalchemy.url")
assert url, "officepass.db.migrate sets sqlalchemy.url"
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
