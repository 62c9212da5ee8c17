"""oauth_flow.flow_state replaces code_verifier: any provider's pending sign-in (issue 17)

A provider keeps what its flow needs as opaque text: Google its PKCE verifier (every pending
row carries over, its verifier as its state, and finishes after the upgrade), Microsoft MSAL's
whole auth code flow (verifier, nonce, state), longer than a verifier's 128 characters.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_flow") as batch:
        batch.add_column(sa.Column("flow_state", sa.Text(), nullable=True))
    op.execute("UPDATE oauth_flow SET flow_state = code_verifier")
    with op.batch_alter_table("oauth_flow") as batch:
        batch.alter_column("flow_state", existing_type=sa.Text(), nullable=False)
        batch.drop_column("code_verifier")


def downgrade() -> None:
    # Only Google's pending sign-ins can be finished by the code before: the others go (a
    # sign-in lives ten minutes; the person starts it again).
    op.execute("DELETE FROM oauth_flow WHERE provider <> 'google'")
    with op.batch_alter_table("oauth_flow") as batch:
        batch.add_column(sa.Column("code_verifier", sa.String(length=128), nullable=True))
    op.execute("UPDATE oauth_flow SET code_verifier = flow_state")
    with op.batch_alter_table("oauth_flow") as batch:
        batch.alter_column("code_verifier", existing_type=sa.String(length=128), nullable=False)
        batch.drop_column("flow_state")
