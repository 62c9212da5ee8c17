"""`calsync explain`, `calsync sync --dry-run` and `calsync sync --confirm-deletes` as a user
runs them: a real process against the emulator and a real database (issue 19 items 1-3)."""

from __future__ import annotations

import pytest

from tests.engine.test_cli_sync import _calsync
from tests.support.world import World, timed

pytestmark = pytest.mark.real_clock


def test_explain_dry_run_and_confirming_held_deletes(world: World, unique: str) -> None:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.configure(work, title_exclude=["secret"])
    day = [world.insert(work, **timed(f"Meeting {n}", 8 + n / 2, 8.25 + n / 2)) for n in range(12)]
    world.insert(work, **timed("Secret interview", 18, 19))
    world.sync_all(work, home)
    assert len(world.blocks(home)) == 12

    said = _calsync(world, "explain", "--search", "interview")
    assert said.returncode == 0, said.stderr
    assert '"Secret interview"' in said.stdout
    assert "title filters" in said.stdout
    said = _calsync(world, "explain", "--calendar", str(work.id), "--id", day[0]["id"])
    assert "blocks" in said.stdout
    assert "written by calsync" in said.stdout
    assert "in sync log" in said.stdout
    refused = _calsync(world, "explain")
    assert refused.returncode == 2
    assert "give event_id" in refused.stderr

    for event in day:
        world.service(work.email).events().delete(
            calendarId=work.provider_id, eventId=event["id"]
        ).execute()
    world.reset_stats()
    dry = _calsync(world, "sync", "--dry-run", "--calendar", str(work.id))
    assert dry.returncode == 0, dry.stderr
    assert "nothing was written" in dry.stdout
    assert "held: its source suddenly returned far fewer events" in dry.stdout
    assert set(world.stats()["calls"]) <= {"events.list", "events.get", "calendarList.list"}
    assert len(world.blocks(home)) == 12
    # The full reconcile's dry run lists every target's blocks too; still only reads.
    full = _calsync(world, "sync", "--full", "--dry-run")
    assert full.returncode == 0, full.stderr
    assert "calsync sync --full --dry-run: nothing was written" in full.stdout
    assert "held: its source suddenly returned far fewer events" in full.stdout
    assert set(world.stats()["calls"]) <= {"events.list", "events.get", "calendarList.list"}
    assert len(world.blocks(home)) == 12

    world.sync(work)
    assert len(world.blocks(home)) == 12  # held
    confirmed = _calsync(world, "sync", "--confirm-deletes", str(work.id))
    assert confirmed.returncode == 0, confirmed.stderr
    assert "12 held deletes confirmed" in confirmed.stdout
    assert world.blocks(home) == []
