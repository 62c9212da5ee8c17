"""SQLite has one writer for the whole file: a sync must not hold it while it waits on the
provider, or every webhook and scheduler tick of the server waits as long as the writes take.

A provider that, before each batch of block writes, tries to start a write transaction of its
own on the same file (as a webhook would) shows whether the sync is holding the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

import pytest
import sqlalchemy as sa

from calsync_server.accounts.vault import StoredCredentials
from calsync_server.db.models import BusyBlock
from calsync_server.providers.google.credentials import to_google
from calsync_server.providers.google.provider import GoogleProvider
from calsync_server.providers.model import BlockOp, BlockResult, RemoteEvent
from calsync_server.sync.engine import SyncEngine
from tests.support.world import FAST_RETRY, World, timed


class _ProbingWrites(GoogleProvider):
    """The real provider; before each listing of blocks and each batch of writes, another
    writer knocks on the file."""

    def __init__(self, credentials: StoredCredentials, root_url: str, probe: _Probe) -> None:
        super().__init__(to_google(credentials, root_url), root_url=root_url, retry=FAST_RETRY)
        self._probe = probe

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        self._probe.knock()
        return super().apply(ops)

    def list_blocks(
        self, calendar_id: str, *, window: tuple[datetime, datetime]
    ) -> list[RemoteEvent]:
        self._probe.knock()
        return super().list_blocks(calendar_id, window=window)


class _Probe:
    def __init__(self, path: str) -> None:
        self.path = path
        self.answers: list[str] = []

    def knock(self) -> None:
        # Short: an idle file answers at once; a held one makes this give up.
        other = sqlite3.connect(self.path, timeout=0.5, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            self.answers.append("free")
        except sqlite3.OperationalError as exc:
            self.answers.append(str(exc))
        finally:
            other.close()


@pytest.fixture
def probed(world: World) -> tuple[SyncEngine, _Probe]:
    if world.db.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has row locks, not one writer per database")
    assert world.db.url.database
    probe = _Probe(world.db.url.database)
    engine = world.engine_through(lambda credentials, url: _ProbingWrites(credentials, url, probe))
    return engine, probe


def test_a_full_reconcile_that_adopts_blocks_leaves_the_file_free_while_it_writes(
    world: World, unique: str, probed: tuple[SyncEngine, _Probe]
) -> None:
    engine, probe = probed
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    side = world.account(f"side-{unique}@example.com")["primary"]
    world.configure(work, home, side)
    for n in range(3):
        world.insert(work, **timed(f"Meeting {n}", 9 + n, 9.5 + n))
    world.sync_all(work, home, side)
    world.execute(sa.delete(BusyBlock))  # as if a crash came between the writes and the commit
    world.insert(work, **timed("New", 15, 16))  # and something new to write

    result = engine.sync_calendar(work.id, full=True)

    assert result.report.error is None, result.report.error
    # Listings of work, home and side (blocks adopted in home before side is listed), and the
    # writes into home and into side.
    assert probe.answers == ["free"] * 5
    assert len(world.rows()) == 8  # three adopted in each of home and side, one written to each
    assert len(world.blocks(home)) == len(world.blocks(side)) == 4


def test_a_hand_edit_noticed_before_writing_leaves_the_file_free_while_it_writes(
    world: World, unique: str, probed: tuple[SyncEngine, _Probe]
) -> None:
    engine, probe = probed
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.insert(work, **timed("Standup", 9, 10))
    world.sync_all(work, home)
    (block,) = world.blocks(home)
    world.service(home.email).events().patch(
        calendarId=home.provider_id, eventId=block["id"], body={"summary": "mine now"}
    ).execute()
    world.insert(home, **timed("Dentist", 14, 15))  # home's next sync also writes into work

    result = engine.sync_calendar(home.id)

    assert result.report.error is None, result.report.error
    assert probe.answers == ["free"] * 2  # the re-read of the edited block, the write
    assert [r.user_modified for r in world.rows() if r.target_calendar_id == home.id] == [True]
    assert len(world.blocks(work)) == 1
