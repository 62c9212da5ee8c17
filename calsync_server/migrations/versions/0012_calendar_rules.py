"""calendar rules (issue 18): title filters, tentative, working hours, already-invited, merge;
event.attendees for the already-invited rule

Every existing calendar keeps today's behaviour: no filters, tentative invitations block, no
working hours, no merging. Events stored before have no attendees (None) until read again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("calendar") as batch:
        batch.add_column(
            sa.Column("title_include", sa.JSON(), nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column("title_exclude", sa.JSON(), nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column("block_tentative", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("working_hours", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("skip_invited", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("merge_blocks", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("attendees", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.drop_column("attendees")
    with op.batch_alter_table("calendar") as batch:
        for name in (
            "merge_blocks",
            "skip_invited",
            "working_hours",
            "block_tentative",
            "title_exclude",
            "title_include",
        ):
            batch.drop_column(name)
