"""Alembic environment: runs migrations on the engine calsync hands over (never from an ini)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from calsync_server.db.models import UTCDateTime  # registers the tables too

target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # sqlmodel's AutoString is a plain VARCHAR; keep migrations free of sqlmodel imports.
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    engine: sa.Engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration copies a table and drops the old one; with foreign keys on,
            # that drop cascades into every child table (a column added to `calendar` emptied
            # `event` and `busy_block`; one on `user` every account). Off for the migration
            # (it must be set outside a transaction), checked after, and on again.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                context.configure(
                    connection=connection,
                    target_metadata=target_metadata,
                    render_item=render_item,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


run_migrations()
