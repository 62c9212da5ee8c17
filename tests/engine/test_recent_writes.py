"""The engine notes the calendars it writes blocks to: the webhooks tell their echoes by it."""

from __future__ import annotations

from tests.support.world import World, timed


def test_a_sync_notes_the_targets_it_writes_to_and_not_its_source(
    world: World, unique: str
) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    cals = world.account(f"home-{unique}@example.com", "Kids")
    home, kids = cals["primary"], cals["Kids"]
    world.configure(work, home)
    world.configure(kids, role="source")
    world.sync_all(work, home, kids)
    written = world.engine.recent_writes
    assert not any(written.lately(cal.id) for cal in (work, home, kids))  # nothing to write

    world.insert(work, **timed("Board meeting", 9, 10))
    world.sync(work)
    assert written.lately(home.id)
    assert not written.lately(work.id)  # read, not written
    assert not written.lately(kids.id)  # a source only: no block goes there
