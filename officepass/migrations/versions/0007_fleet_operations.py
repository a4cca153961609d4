"""fleet operations (contract §11): enrollment codes, the doors' broker identities, remote configurations,
releases

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrollments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("store", sa.String(64), nullable=False),
        sa.Column("door", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_from", sa.String(64), nullable=True),
        sa.Column("key_sha256", sa.String(64), nullable=True),
    )
    op.create_table(
        "door_identities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store", sa.String(64), nullable=False),
        sa.Column("door", sa.String(64), nullable=False),
        sa.Column("enrollment", sa.Integer, nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("certificate_serial", sa.String(64), nullable=False),
        sa.Column("issued", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("door_identities_door", "door_identities", ["store", "door"])
    op.create_table(
        "door_configs",
        sa.Column("store", sa.String(64), primary_key=True),
        sa.Column("door", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )

    op.create_table(
        "releases",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_table("door_configs")
    op.drop_index("door_identities_door", "door_identities")
    op.drop_table("door_identities")
    op.drop_table("enrollments")
