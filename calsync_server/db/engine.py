"""Database engines (SQLite in WAL mode, PostgreSQL via psycopg 3) and the migration runner."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from filelock import FileLock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def normalise_url(url: str) -> str:
    """Point plain postgresql:// URLs at psycopg 3, the driver calsync ships with."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard's reads run while a sync writes; foreign keys make cascades real.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = sa.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A connect timeout: an unreachable database fails a request in seconds instead of
    # holding it (and a worker thread) for the operating system's TCP timeout.
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or used now (down, restarting, a
    connection cut, SQLite's file locked), not that a statement is wrong."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError))


def lock_beside(engine: sa.Engine, name: str) -> AbstractContextManager[object]:
    """On a SQLite file, a lock file beside it named `name`: what several processes on one
    file (servers, `calsync sync`) take to do one thing at a time. Elsewhere nothing: on
    PostgreSQL the database's own locks do this."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return nullcontext()
    return FileLock(f"{database}.{name}.lock")


def alembic_config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: sa.Engine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the server does this on start)."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
