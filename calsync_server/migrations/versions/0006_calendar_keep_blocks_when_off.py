"""calendar.keep_blocks_when_off: the blocks a calendar held stay when its sync is turned off

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Existing calendars keep the default: their blocks go when sync is turned off.
    with op.batch_alter_table('calendar') as batch:
        batch.add_column(
            sa.Column(
                'keep_blocks_when_off', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('calendar') as batch:
        batch.drop_column('keep_blocks_when_off')
