"""which sync wrote a block (issue 19 item 1): sync_log.sync_key and busy_block.sync_key

Each sync takes a random key as it starts; its log row and every block row it writes carry
it, so explain names the sync that wrote a block exactly (it matched by time before). Rows
already there carry none (NULL): their writer is not known.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("sync_log") as batch:
        batch.add_column(sa.Column("sync_key", sa.String(length=32), nullable=True))
        batch.create_index("ix_sync_log_sync_key", ["sync_key"], unique=False)
    with op.batch_alter_table("busy_block") as batch:
        batch.add_column(sa.Column("sync_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("busy_block") as batch:
        batch.drop_column("sync_key")
    with op.batch_alter_table("sync_log") as batch:
        batch.drop_index("ix_sync_log_sync_key")
        batch.drop_column("sync_key")
