"""user.name unique (helper D): users are named on the command line

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Names were never checked: a second user of one name keeps its rows under "<name>-<id>".
    user = sa.table('user', sa.column('id', sa.Integer), sa.column('name', sa.String))
    connection = op.get_bind()
    rows = connection.execute(sa.select(user.c.id, user.c.name).order_by(user.c.id)).all()
    taken = {name for _, name in rows}
    seen: set[str] = set()
    for user_id, name in rows:
        if name in seen:
            renamed = f"{name[:180]}-{user_id}"
            while renamed in taken:
                renamed += "-"
            connection.execute(user.update().where(user.c.id == user_id).values(name=renamed))
            taken.add(renamed)
            name = renamed
        seen.add(name)
    with op.batch_alter_table('user') as batch:
        batch.create_unique_constraint(batch.f('uq_user_name'), ['name'])


def downgrade() -> None:
    with op.batch_alter_table('user') as batch:
        batch.drop_constraint(batch.f('uq_user_name'), type_='unique')
