"""a merged block's member sources: busy_block.member_sources

A merged block's row named only its first member's source calendar, so a block that also
stood for a source whose login was then refused could be deleted or moved (domain.md: a
refused login deletes no block). The column holds every member's source calendar id (a JSON
list, sorted); NULL for a block of one event. Rows already there carry NULL: the next plan
that finds such a merged block as wanted restamps its row (no provider call).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("busy_block") as batch:
        batch.add_column(sa.Column("member_sources", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("busy_block") as batch:
        batch.drop_column("member_sources")
