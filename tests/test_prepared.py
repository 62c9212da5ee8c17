"""Prepared statements (the webhooks' hot path) convert values as SQLAlchemy does and raise its
errors, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from calsync_server.db.engine import upgrade_database
from calsync_server.db.models import SyncJob
from calsync_server.db.prepared import Prepared
from shared.domain import JobState
from tests.support.rows import add_calendars

QUEUED = datetime(2026, 11, 21, 9, 0, 0, 250_000, tzinfo=UTC)
jobs = SQLModel.metadata.tables[SyncJob.__tablename__]
INSERT = Prepared(
    sa.insert(jobs).values(
        {
            **{
                name: sa.bindparam(name)
                for name in ("calendar_id", "kind", "full", "state", "attempts", "run_after")
            },
            "created_at": sa.bindparam("run_after"),
        }
    )
)
WAITING = Prepared(
    sa.select(jobs.c.id, jobs.c.full, jobs.c.run_after).where(
        jobs.c.calendar_id == sa.bindparam("id"), jobs.c.state == JobState.QUEUED.value
    )
)
# A literal in the statement (the state compared) and one set (the attempts).
POSTPONE = Prepared(
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("b_id"), jobs.c.state == JobState.QUEUED.value)
    .values(run_after=sa.bindparam("b_run_after"), attempts=3)
)


def _job(calendar_id: int, state: JobState = JobState.QUEUED) -> dict[str, object]:
    return {
        "calendar_id": calendar_id,
        "kind": "webhook",
        "full": True,
        "state": state.value,
        "attempts": 0,
        "run_after": QUEUED,
    }


def test_values_go_in_and_come_out_as_sqlalchemy_converts_them(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        (calendar,) = add_calendars(session, "work")
    with db_engine.begin() as connection:
        INSERT.execute_many(connection, [_job(calendar), _job(calendar, JobState.DONE)])
        (row,) = WAITING.rows(connection, {"id": calendar})
        # An aware datetime and a bool, not SQLite's stored text and integer.
        assert (row.full, row.run_after) == (True, QUEUED)
        later = QUEUED + timedelta(seconds=1)
        assert POSTPONE.execute(connection, {"b_id": row.id, "b_run_after": later}) == 1
    with Session(db_engine) as session:
        stored = session.get(SyncJob, row.id)
        assert stored is not None
        assert (stored.run_after, stored.created_at, stored.attempts) == (later, QUEUED, 3)
        done = [job for job in session.query(SyncJob).all() if job.state == JobState.DONE]
    with db_engine.begin() as connection:
        # The compared literal holds: a job no longer queued is not matched.
        assert POSTPONE.execute(connection, {"b_id": done[0].id, "b_run_after": QUEUED}) == 0


def test_a_driver_error_is_raised_as_sqlalchemy_s(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        (calendar,) = add_calendars(session, "work")
    # A second queued job of one calendar: the partial unique index refuses it, and the
    # callers (the webhooks' outage check, the queue's retries) read SQLAlchemy's errors.
    with pytest.raises(sa.exc.IntegrityError), db_engine.begin() as connection:
        INSERT.execute_many(connection, [_job(calendar), _job(calendar)])
