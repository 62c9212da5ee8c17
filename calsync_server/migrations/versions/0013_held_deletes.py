"""the safety catch (issue 19): a source calendar's held deletes

A calendar whose read suddenly returned far fewer events, and whose blocks' deletes were held,
keeps what is held here until the user confirms or the source recovers. Existing calendars
hold nothing (NULL).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("calendar") as batch:
        batch.add_column(sa.Column("held_deletes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendar") as batch:
        batch.drop_column("held_deletes")
