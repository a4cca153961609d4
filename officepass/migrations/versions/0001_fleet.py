"""fleet state: doors, seats, live sessions, events, seq ranges and gaps

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "doors",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("door", sa.String(64), primary_key=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("status", sa.JSON, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
    )
    op.create_table(
        "store_seats",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("seats", sa.JSON, nullable=False),
        sa.Column("updated", TZ, nullable=False),
    )
    op.create_table(
        "live_sessions",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("member", sa.String(64), primary_key=True),
        sa.Column("session", sa.JSON, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("store", sa.String(64), nullable=False),
        sa.Column("door", sa.String(64), nullable=False),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("member", sa.String(64), nullable=True),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.UniqueConstraint("store", "door", "epoch", "seq", name="events_door_seq"),
    )
    op.create_index("events_by_time", "events", ["store", "door", "ts"])
    op.create_table(
        "seq_ranges",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("door", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.String(32), primary_key=True),
        sa.Column("low", sa.Integer, nullable=False),
        sa.Column("high", sa.Integer, nullable=False),
    )
    op.create_table(
        "seq_gaps",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("door", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.String(32), primary_key=True),
        sa.Column("first", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("seq_gaps", "seq_ranges", "events", "live_sessions", "store_seats", "doors"):
        op.drop_table(table)
