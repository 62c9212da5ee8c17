"""A first sync of a big calendar reports its progress as it goes (issue 20 item 4): the engine
tells a listener when it reads, how many events it read, and blocks written of how many; and
`calsync sync` shows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from calsync_server.sync.applier import PROGRESS_CHUNK
from calsync_server.sync.report import SyncProgress
from tests.support.world import Cal, World, timed

EVENTS = PROGRESS_CHUNK * 2 + 30  # three chunks of block writes


def _big_calendar(world: World, unique: str) -> tuple[Cal, Cal]:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    for n in range(EVENTS):
        world.insert(work, **timed(f"Meeting {n}", 8 + n % 10, 9 + n % 10, days=1 + n // 10))
    return work, home


def test_a_big_first_sync_reports_reading_then_blocks_written_of_how_many(
    world: World, unique: str
) -> None:
    work, home = _big_calendar(world, unique)
    heard: list[SyncProgress] = []

    result = world.engine.sync_calendar(work.id, progress=heard.append)

    assert result.report.blocks_created == EVENTS
    phases = [p.phase for p in heard]
    assert phases[:2] == ["reading", "read"], phases
    assert heard[1].events_read == EVENTS
    writing = [p for p in heard if p.phase == "writing"]
    # Announced before the first write, then once per chunk, counting up to the total.
    assert [p.blocks_done for p in writing] == [0, 100, 200, EVENTS]
    assert {p.blocks_total for p in writing} == {EVENTS}
    assert all(p.events_read == EVENTS for p in writing)
    assert len(world.blocks(home)) == EVENTS


@pytest.mark.real_clock
def test_calsync_sync_shows_events_read_and_blocks_written(world: World, unique: str) -> None:
    work, _ = _big_calendar(world, unique)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CALSYNC_HOME": str(world.settings.home),
        "CALSYNC_DATABASE_URL": world.settings.database_url,
        "CALSYNC_GOOGLE_API_URL": world.settings.google_api_url,
        "COLUMNS": "200",
        # A terminal's live display, though stderr is a pipe here.
        "TTY_INTERACTIVE": "1",
        "TTY_COMPATIBLE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", "sync", "--calendar", str(work.id)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    assert f"{EVENTS} events read, blocks written" in shown, shown
    assert f"{EVENTS}/{EVENTS} blocks" in shown, shown
    assert "1/1 calendars" in shown, shown
