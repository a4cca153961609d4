"""gap repair: when each open gap was last asked for, and the ranges doors reported lost

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seq_gaps") as batch:
        batch.add_column(sa.Column("asked", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "seq_lost",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("door", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.String(32), primary_key=True),
        sa.Column("first", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
        sa.Column("reported", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("seq_lost")
    with op.batch_alter_table("seq_gaps") as batch:
        batch.drop_column("attempts")
        batch.drop_column("asked")
