"""members, stores, revocation lists

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "stores",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("doors", sa.JSON, nullable=False),
        sa.Column("areas", sa.Text, nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
    )
    op.create_table(
        "revocations",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("members", sa.JSON, nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("revocations", "stores", "members"):
        op.drop_table(table)
