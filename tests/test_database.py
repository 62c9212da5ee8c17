"""The database: migrations build exactly the models, and constraints make duplicates impossible."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from calsync_server.db.engine import current_revision, upgrade_database
from calsync_server.db.lease import Leases
from calsync_server.db.models import Account, BusyBlock, Calendar, Event, SyncJob
from shared.clock import FixedClock
from shared.domain import JobState
from tests.support.rows import add_calendars

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _two_calendars(session: Session) -> tuple[int, int]:
    work, home = add_calendars(session, "work", "home")
    return work, home


def _block(target: int, source: int, key: str, provider_id: str) -> BusyBlock:
    return BusyBlock(
        target_calendar_id=target,
        source_calendar_id=source,
        source_key=key,
        provider_event_id=provider_id,
        summary="Busy",
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.empty_database
def test_migrations_from_empty_reach_the_models_exactly(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with db_engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}),
            SQLModel.metadata,
        )
    assert diff == []
    assert current_revision(db_engine) is not None


def test_a_second_block_for_the_same_target_and_source_key_fails(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        work, home = _two_calendars(session)
        session.add(_block(home, work, "k1", "aaaaa1"))
        session.commit()
        session.add(_block(home, work, "k1", "aaaaa2"))
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()
        session.rollback()
        # The same source key in another target is a different block and is fine.
        session.add(_block(work, home, "k1", "aaaaa1"))
        session.commit()
        assert len(session.exec(sa.select(BusyBlock)).all()) == 2  # type: ignore[call-overload]


def test_one_event_per_calendar_and_provider_id(db_engine: sa.Engine) -> None:
    from calsync_server.db.models import Event

    upgrade_database(db_engine)
    with Session(db_engine) as session:
        work, _ = _two_calendars(session)
        session.add(Event(calendar_id=work, provider_event_id="e1"))
        session.commit()
        session.add(Event(calendar_id=work, provider_event_id="e1"))
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()


def test_at_most_one_queued_job_per_calendar(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        work, _ = _two_calendars(session)
        running = SyncJob(calendar_id=work, state=JobState.RUNNING, run_after=NOW, created_at=NOW)
        queued = SyncJob(calendar_id=work, run_after=NOW, created_at=NOW)
        session.add_all([running, queued])
        session.commit()
        session.add(SyncJob(calendar_id=work, run_after=NOW, created_at=NOW))
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()


def test_deleting_an_account_removes_its_calendars(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        work, home = _two_calendars(session)
        session.add(_block(home, work, "k1", "aaaaa1"))
        session.commit()
        session.execute(sa.delete(Account))
        session.commit()
        assert session.execute(sa.select(sa.func.count()).select_from(Calendar)).scalar() == 0
        assert session.execute(sa.select(sa.func.count()).select_from(BusyBlock)).scalar() == 0


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    from calsync_server.db.engine import create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_cli_db_upgrade_creates_the_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", "--home", str(home), "db", "upgrade"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    engine = sa.create_engine(f"sqlite:///{home / 'calsync.db'}")
    assert "busy_block" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_a_lease_has_one_holder_until_released_or_expired(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    clock = FixedClock(NOW)
    first, second = Leases(db_engine, clock), Leases(db_engine, clock)
    ttl = timedelta(minutes=2)

    assert first.take("job", ttl)
    assert not second.take("job", ttl)
    assert first.take("job", ttl)  # the holder extends it
    second.release("job")  # not its to release
    assert not second.take("job", ttl)

    clock.advance(ttl + timedelta(seconds=1))  # the holder died: its lease runs out
    assert second.take("job", ttl)
    assert not first.take("job", ttl)

    with second.held("job", ttl) as held:  # released on the way out
        assert held
    assert first.take("job", ttl)


@pytest.mark.empty_database
def test_an_upgrade_keeps_every_row_and_new_calendar_settings_start_off(
    db_engine: sa.Engine,
) -> None:
    """Migrations that rebuild a table (SQLite's batch mode) must not cascade-delete its
    children: a calendar column added emptied `event`, a `user` constraint every account."""
    upgrade_database(db_engine, "0005")
    with db_engine.begin() as connection:
        for statement in (
            "INSERT INTO \"user\" (name, api_token_hash, created_at) VALUES ('ada', 'h', :now)",
            "INSERT INTO account (user_id, provider, email, state, created_at) "
            "VALUES (1, 'google', 'ada@example.com', 'active', :now)",
            "INSERT INTO calendar (account_id, provider_calendar_id, name, access_role, "
            "sync_enabled, role, busy_title, include_all_day, read_only) "
            "VALUES (1, 'ada@example.com', 'Ada', 'owner', true, 'target', 'title', true, false)",
            "INSERT INTO event (calendar_id, provider_event_id, status, all_day, transparency, "
            "event_type, is_deleted) VALUES (1, 'e1', 'confirmed', false, 'opaque', 'default', "
            "false)",
        ):
            connection.execute(sa.text(statement), {"now": NOW})

    upgrade_database(db_engine)

    with Session(db_engine) as session:
        (calendar,) = session.exec(select(Calendar)).all()
        (event,) = session.exec(select(Event)).all()
        (account,) = session.exec(select(Account)).all()
    assert (calendar.name, calendar.sync_enabled, calendar.role, calendar.busy_title) == (
        "Ada",
        True,
        "target",
        "title",
    )
    assert calendar.keep_blocks_when_off is False
    assert (event.provider_event_id, account.email) == ("e1", "ada@example.com")
    if db_engine.dialect.name == "sqlite":
        with db_engine.connect() as connection:  # cascades are real again afterwards
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
