"""push_subscription replaces push_channel (helper I): neutral push, our own key in the path

Every channel carries over: its channel id becomes its key (the legacy /webhooks/google route
finds it by its remote id, which is the same id) and its remote id; token -> secret,
resource_id -> resource, last_message_number -> last_sequence. notification.resource_state
becomes notification.kind, in calsync's words (sync -> opened, exists/not_exists -> changed).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

KINDS = {"sync": "opened", "exists": "changed", "not_exists": "changed"}
STATES = {"opened": "sync", "changed": "exists"}


def upgrade() -> None:
    op.create_table(
        "push_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("remote_id", sa.String(length=256), nullable=True),
        sa.Column("resource", sa.String(length=1024), nullable=True),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("address", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=32), server_default="active", nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("unannounced_changes", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_notification_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renew_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendar.id"],
            name=op.f("fk_push_subscription_calendar_id_calendar"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscription")),
        sa.UniqueConstraint("key", name=op.f("uq_push_subscription_key")),
    )
    with op.batch_alter_table("push_subscription") as batch:
        batch.create_index(batch.f("ix_push_subscription_calendar_id"), ["calendar_id"])
        batch.create_index(batch.f("ix_push_subscription_remote_id"), ["remote_id"])
    # Every channel, as it is. A failing placeholder (never made at Google) has no remote id.
    op.execute(
        "INSERT INTO push_subscription (id, calendar_id, provider, key, remote_id, resource, "
        "secret, address, expires_at, state, failures, unannounced_changes, last_error, "
        "last_attempt_at, last_sequence, last_notification_at, renewed_at, created_at, "
        "stopped_at) "
        "SELECT c.id, c.calendar_id, a.provider, c.channel_id, "
        "CASE WHEN c.resource_id IS NULL THEN NULL ELSE c.channel_id END, c.resource_id, "
        "c.token, c.address, c.expires_at, c.state, c.failures, c.unannounced_changes, "
        "c.last_error, c.last_attempt_at, c.last_message_number, c.last_notification_at, "
        "c.created_at, c.created_at, c.stopped_at "
        "FROM push_channel c JOIN calendar k ON k.id = c.calendar_id "
        "JOIN account a ON a.id = k.account_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        # Rows were copied with their ids: the sequence goes on after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('push_subscription', 'id'), "
            "COALESCE((SELECT MAX(id) FROM push_subscription), 0) + 1, false)"
        )
    with op.batch_alter_table("push_channel") as batch:
        batch.drop_index(batch.f("ix_push_channel_calendar_id"))
    op.drop_table("push_channel")

    with op.batch_alter_table("notification") as batch:
        batch.alter_column(
            "resource_state",
            new_column_name="kind",
            existing_type=sa.String(length=16),
            existing_nullable=False,
        )
    notification = sa.table("notification", sa.column("kind", sa.String))
    for old, new in KINDS.items():
        op.execute(notification.update().where(notification.c.kind == old).values(kind=new))


def downgrade() -> None:
    notification = sa.table("notification", sa.column("kind", sa.String))
    for new, old in STATES.items():
        op.execute(notification.update().where(notification.c.kind == new).values(kind=old))
    with op.batch_alter_table("notification") as batch:
        batch.alter_column(
            "kind",
            new_column_name="resource_state",
            existing_type=sa.String(length=16),
            existing_nullable=False,
        )
    op.create_table(
        "push_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=256), nullable=True),
        sa.Column("token", sa.String(length=256), nullable=False),
        sa.Column("address", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=32), server_default="active", nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_message_number", sa.BigInteger(), nullable=True),
        sa.Column("last_notification_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unannounced_changes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendar.id"],
            name=op.f("fk_push_channel_calendar_id_calendar"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_channel")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_push_channel_channel_id")),
    )
    with op.batch_alter_table("push_channel") as batch:
        batch.create_index(batch.f("ix_push_channel_calendar_id"), ["calendar_id"])
    # Only Google channels (a key of at most 64 characters is their channel id) go back.
    op.execute(
        "INSERT INTO push_channel (id, calendar_id, channel_id, resource_id, token, address, "
        "expires_at, state, failures, last_message_number, last_notification_at, created_at, "
        "stopped_at, unannounced_changes, last_error, last_attempt_at) "
        "SELECT id, calendar_id, COALESCE(remote_id, key), resource, secret, address, "
        "expires_at, state, failures, last_sequence, last_notification_at, created_at, "
        "stopped_at, unannounced_changes, last_error, last_attempt_at "
        "FROM push_subscription WHERE provider = 'google'"
    )
    with op.batch_alter_table("push_subscription") as batch:
        batch.drop_index(batch.f("ix_push_subscription_remote_id"))
        batch.drop_index(batch.f("ix_push_subscription_calendar_id"))
    op.drop_table("push_subscription")
