"""push channel health: unannounced changes, last error, last attempt

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('push_channel') as batch:
        batch.add_column(
            sa.Column('unannounced_changes', sa.Integer(), nullable=False, server_default='0')
        )
        batch.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch.add_column(sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('push_channel') as batch:
        batch.drop_column('last_attempt_at')
        batch.drop_column('last_error')
        batch.drop_column('unannounced_changes')
