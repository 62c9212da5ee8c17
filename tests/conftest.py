"""Fixtures every tier shares: a fresh database per test, on SQLite and (when set up) PostgreSQL."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from calsync_server.db.engine import create_db_engine
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from tests.support import world as world_support
from tests.support.clock import MovedWallClock, wall_clocks_from_env
from tests.support.databases import PostgresTemplates, SqliteTemplates

POSTGRES_URL = os.environ.get("CALSYNC_TEST_POSTGRES_URL")

# Tests using these build on "today" (events at `at(9)`, the demo's fortnight around a day):
# they are the `wall_clock` tests, which `make test` runs with the wall clock moved.
WALL_CLOCK_FIXTURES = frozenset({"world", "server_world", "fresh_demo", "demo", "push_demo"})
# Session-scoped demos (tests/tui/conftest.py), each a server and an emulator synced from empty.
DEMO_SESSION_FIXTURES = frozenset({"demo", "three_demo", "push_demo"})


WALL_CLOCKS = wall_clocks_from_env()
MOVED_CLOCK = MovedWallClock()
# The instant a `wall_clock` test runs at (none: the real clock).
INSTANT = pytest.StashKey[datetime]()


def pytest_report_header(config: pytest.Config) -> str | None:
    if not WALL_CLOCKS:
        return None
    return "wall_clock tests at moved wall clocks (ticking), a share at each: " + ", ".join(
        at.isoformat() for at in WALL_CLOCKS
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        demos = sorted(DEMO_SESSION_FIXTURES & fixtures)
        if demos:
            # Under pytest-xdist (--dist loadgroup) each demo's tests run on one worker, one
            # after another: each demo is built once, and at one instant.
            item.add_marker(pytest.mark.xdist_group(demos[0]))
        if WALL_CLOCK_FIXTURES & fixtures:
            item.add_marker(pytest.mark.wall_clock)
            if WALL_CLOCKS and not item.get_closest_marker("real_clock"):
                key = demos[0] if demos else item.nodeid
                item.stash[INSTANT] = WALL_CLOCKS[zlib.crc32(key.encode()) % len(WALL_CLOCKS)]


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up, session ones too
def pytest_runtest_setup(item: pytest.Item) -> None:
    MOVED_CLOCK.move_to(item.stash.get(INSTANT, None))


def pytest_sessionfinish() -> None:
    MOVED_CLOCK.stop()


@pytest.fixture(autouse=True)
def _one_day_per_test() -> Iterator[None]:
    """`at(9)` means one instant for the whole test, even one that runs across midnight."""
    world_support.pin_test_day(datetime.now(UTC))
    yield
    world_support.pin_test_day(None)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def postgres_templates() -> Iterator[PostgresTemplates]:
    assert POSTGRES_URL
    templates = PostgresTemplates(POSTGRES_URL)
    yield templates
    templates.close()


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
    """A URL of a database that exists for this test only: migrated to the newest revision, or
    empty for a test marked `empty_database`."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        templates: SqliteTemplates = request.getfixturevalue("sqlite_templates")
        yield templates.new(tmp_path / "calsync.db", empty=empty)
        return
    postgres: PostgresTemplates = request.getfixturevalue("postgres_templates")
    name, url = postgres.new(empty=empty)
    try:
        yield url
    finally:
        postgres.drop(name)


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
