"""Explain names the sync that wrote a block exactly (issue 19 item 1): each sync's key is on its
log and on every block row it writes, so syncs that ran at the same instant (a clock standing
still, or two syncs of the user at once) are never confused, and a later sync that wrote
nothing is not taken for the writer."""

from __future__ import annotations

from datetime import UTC, datetime

from calsync_server.sync.engine import SyncEngine
from shared.clock import FixedClock
from shared.schemas import ExplainBlock
from tests.support.explain import explained
from tests.support.world import FAST_RETRY, World, timed


def _block_of(world: World, engine: SyncEngine, user_id: int, title: str) -> ExplainBlock:
    """The block standing for the event in its one other calendar, as explain tells it."""
    event, _ = explained(world, user_id, title, engine.clock.now())
    (target,) = event.targets
    (block,) = target.blocks
    return block


def test_explain_names_the_sync_that_wrote_the_block(world: World, unique: str) -> None:
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    planning = world.insert(work, **timed("Planning", 9, 10))
    # Every sync starts and ends at the same instant: a match by time cannot tell them apart.
    engine = SyncEngine(
        world.db,
        world.settings,
        clock=FixedClock(datetime.now(UTC)),
        vault=world.vault,
        retry=FAST_RETRY,
    )
    user = world.user("ada")
    wrote = engine.sync_calendar(work.id)
    assert wrote.log.blocks_created == 1
    engine.sync_calendar(home.id)
    echo = engine.sync_calendar(work.id)  # reads nothing new, writes nothing
    assert echo.log.blocks_created == echo.log.blocks_updated == 0

    block = _block_of(world, engine, user, "Planning")
    assert block.written_by == "calsync"
    assert (block.sync_log_id, block.sync_calendar_id) == (wrote.log.id, work.id)

    # Moved: the sync that moves its block is the writer now.
    world.service(work.email).events().patch(
        calendarId=work.provider_id,
        eventId=planning["id"],
        body={k: v for k, v in timed("Planning", 11, 12).items() if k != "summary"},
    ).execute()
    moved = engine.sync_calendar(work.id)
    assert moved.log.blocks_updated == 1
    engine.sync_calendar(work.id)
    assert _block_of(world, engine, user, "Planning").sync_log_id == moved.log.id
