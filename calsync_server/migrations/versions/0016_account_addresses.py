"""every address an account's owner is known by: account.addresses

The "already there" rule (domain.md) leaves no block in a target whose own account is invited
to the event, but calsync knew the account only by its email: an invitation to the owner's
other address (iCloud's Apple ID and its aliases in CalDAV's calendar-user-address-set,
Graph's mail beside the user principal name) still gave a block. The column holds the
addresses the provider tells (a JSON list, lower case, sorted), filled at sign-in and whenever
discovery runs again; NULL until then, when the email stands alone as before.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("addresses", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_column("addresses")
