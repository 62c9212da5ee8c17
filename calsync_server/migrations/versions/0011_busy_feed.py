"""busy_feed: a user's free/busy feed, a secret iCalendar URL (issue 19 item 5)

Only the hash of the URL's secret is stored; the key finds the row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "busy_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name="fk_busy_feed_user_id_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_busy_feed"),
        sa.UniqueConstraint("user_id", name="uq_busy_feed_user_id"),
        sa.UniqueConstraint("key", name="uq_busy_feed_key"),
    )


def downgrade() -> None:
    op.drop_table("busy_feed")
