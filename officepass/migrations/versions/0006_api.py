"""the integrators' API: the events feed's positions, API tokens, webhooks and their deliveries

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("position", sa.Integer, nullable=True))
        batch.add_column(sa.Column("received", sa.DateTime(timezone=True), nullable=True))
    # Events stored before the feed existed: in the order of their own time, received then. One
    # statement for the whole table (SQLite 3.33+ and PostgreSQL both take UPDATE ... FROM).
    op.execute("UPDATE events SET position = ranked.n, received = events.ts FROM "
               "(SELECT id, row_number() OVER (ORDER BY ts, id) AS n FROM events) AS ranked "
               "WHERE events.id = ranked.id")
    stored = op.get_bind().execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    with op.batch_alter_table("events") as batch:
        batch.alter_column("position", existing_type=sa.Integer, nullable=False)
        batch.alter_column("received", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_unique_constraint("events_position", ["position"])
    counter = op.create_table(
        "feed_counter",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.bulk_insert(counter, [{"id": 1, "position": stored}])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("webhook", sa.Integer, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("delivered", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gave_up", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("webhook", "event", name="deliveries_once"),
    )
    op.create_index("deliveries_due", "webhook_deliveries", ["done", "due"])


def downgrade() -> None:
    op.drop_index("deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("api_tokens")
    op.drop_table("feed_counter")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("events_position", type_="unique")
        batch.drop_column("received")
        batch.drop_column("position")
