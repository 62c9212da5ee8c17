"""pending sign-ins: oauth_flow

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('oauth_flow',
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), server_default='google', nullable=False),
    sa.Column('code_verifier', sa.String(length=128), nullable=False),
    sa.Column('redirect_uri', sa.String(length=2048), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_oauth_flow_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state_hash', name=op.f('pk_oauth_flow'))
    )
    with op.batch_alter_table('oauth_flow', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_flow_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_oauth_flow_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oauth_flow', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_flow_user_id'))
        batch_op.drop_index(batch_op.f('ix_oauth_flow_expires_at'))
    op.drop_table('oauth_flow')
