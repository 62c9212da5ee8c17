"""Rows for database-tier tests: one user, one account, the calendars asked for; and every row
of the tables, to show that something wrote nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from calsync_server.db.models import Account, Calendar, User

CREATED = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def add_calendars(session: Session, *provider_ids: str) -> list[int]:
    """Commit a user with one account holding these calendars; their ids, in order."""
    user = User(name="ada", api_token_hash="0" * 64, created_at=CREATED)
    session.add(user)
    session.flush()
    account = Account(user_id=user.id, email="ada@example.com", created_at=CREATED)
    session.add(account)
    session.flush()
    calendars = [
        Calendar(account_id=account.id, provider_calendar_id=pid, name=pid.title())
        for pid in provider_ids
    ]
    session.add_all(calendars)
    session.commit()
    return [calendar.id for calendar in calendars if calendar.id is not None]


def table_rows(
    db: sa.Engine, names: Iterable[str] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of these tables (None: all of them), in an order that does not depend on the
    database's."""
    with db.connect() as connection:
        chosen = sa.inspect(connection).get_table_names() if names is None else names
        return {
            name: sorted(
                map(tuple, connection.execute(sa.text(f'SELECT * FROM "{name}"'))), key=repr
            )
            for name in chosen
        }
