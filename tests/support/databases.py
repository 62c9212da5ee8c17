"""Per-test databases made from one migrated template per test process: a copy of a file
(SQLite) or `CREATE DATABASE ... TEMPLATE` (PostgreSQL) instead of running every migration for
every test. Tests of the migrations themselves ask for an empty database (`empty_database`)."""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

from calsync_server.db.engine import create_db_engine, normalise_url, upgrade_database
from tests.support.waiting import wait_until

# PostgreSQL refuses to copy a template another session is connected to (autovacuum may be,
# for a moment): the copy is tried again until this deadline.
TEMPLATE_BUSY_DEADLINE_S = 30.0


class SqliteTemplates:
    """One migrated SQLite file, copied for each test that wants a migrated database."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._template: Path | None = None

    def new(self, path: Path, *, empty: bool) -> str:
        if not empty:
            shutil.copyfile(self._migrated(), path)
        return f"sqlite:///{path}"

    def _migrated(self) -> Path:
        if self._template is None:
            template = self._folder / "template.db"
            engine = create_db_engine(f"sqlite:///{template}")
            upgrade_database(engine)
            with engine.connect() as connection:
                # Everything into the file itself: only the file is copied.
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            engine.dispose()
            self._template = template
        return self._template


class PostgresTemplates:
    """Databases on one PostgreSQL server, each made for one test, from a migrated template
    made once. A copy takes a third of a second or more and a drop most of one: both run in
    the background, the next test's copy made while this one runs."""

    def __init__(self, url: str) -> None:
        self._admin_url = sa.make_url(normalise_url(url))
        self._admin = sa.create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        self._template: str | None = None
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-database")
        self._drops: list[Future[None]] = []
        self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy-database")
        self._spare: Future[str] | None = None  # the next test's migrated database

    def new(self, *, empty: bool) -> tuple[str, str]:
        """A new database's name and URL."""
        if empty:
            name = _new_name()
            self._execute(f'CREATE DATABASE "{name}"')
        else:
            name = self._spare.result() if self._spare is not None else self._copy()
            self._spare = self._copier.submit(self._copy)
        return name, self._admin_url.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        self._drops.append(
            self._dropper.submit(self._execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )

    def close(self) -> None:
        if self._spare is not None:
            self.drop(self._spare.result())
        self._copier.shutdown()
        for drop in self._drops:
            drop.result()
        self._dropper.shutdown()
        if self._template is not None:
            self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._admin.dispose()

    def _migrated(self) -> str:
        if self._template is None:
            name = f"calsync_template_{uuid.uuid4().hex[:12]}"
            self._execute(f'CREATE DATABASE "{name}"')
            engine = create_db_engine(
                self._admin_url.set(database=name).render_as_string(hide_password=False)
            )
            upgrade_database(engine)
            engine.dispose()
            self._template = name
        return self._template

    def _copy(self) -> str:
        """A new copy of the migrated template: its name."""
        template, name = self._migrated(), _new_name()

        def copied() -> bool:
            try:
                self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            except sa.exc.OperationalError as exc:
                if "is being accessed by other users" not in str(exc):
                    raise
                return False
            return True

        wait_until(copied, TEMPLATE_BUSY_DEADLINE_S, interval=0.05, what=f"a copy of {template}")
        return name

    def _execute(self, statement: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(sa.text(statement))


def _new_name() -> str:
    return f"calsync_test_{uuid.uuid4().hex[:12]}"
