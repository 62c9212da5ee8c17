"""Fixtures every tier shares: a fresh database per test, on SQLite and (when set up) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from calsync_server.db.engine import create_db_engine, normalise_url
from calsync_server.emulator.config import EmulatorConfig
from calsync_server.emulator.runner import RunningEmulator, run_emulator

POSTGRES_URL = os.environ.get("CALSYNC_TEST_POSTGRES_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="CALSYNC_TEST_POSTGRES_URL is not set"),
            ],
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database that exists for this test only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'calsync.db'}"
        return
    assert POSTGRES_URL
    admin_url = sa.make_url(normalise_url(POSTGRES_URL))
    name = f"calsync_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """One emulator for the engine and server tiers: each test makes its own accounts (unique
    emails), so tests never see each other's calendars."""
    with run_emulator(EmulatorConfig()) as running:
        yield running


_counter = iter(range(1, 10**9))


@pytest.fixture
def unique() -> str:
    """A fresh tag for this test's email addresses (the emulator is shared)."""
    return f"t{next(_counter)}x{id(object()) % 100000}"
