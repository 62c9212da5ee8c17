"""The dry run shows each block when its target calendar shows it: an all-day block's days run
from midnight in the target's zone, whatever zone its source's day was read in."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from calsync_server.db.models import Calendar
from shared.clock import FixedClock
from shared.schemas import PlanPreview
from tests.engine.test_switches import NOW, engine_at, sync_all
from tests.support.world import World

DAY = {"start": {"date": "2031-05-15"}, "end": {"date": "2031-05-16"}}
# 2031-05-15 to 05-16 in Honolulu (UTC-10) and in Berlin (UTC+2 in May).
IN_HONOLULU = (datetime(2031, 5, 15, 10, tzinfo=UTC), datetime(2031, 5, 16, 10, tzinfo=UTC))
IN_BERLIN = (datetime(2031, 5, 14, 22, tzinfo=UTC), datetime(2031, 5, 15, 22, tzinfo=UTC))


def _shown(planned: PlanPreview) -> dict[tuple[int, str], tuple[object, object]]:
    """Each planned change, by target and action: when the dry run says it is."""
    return {
        (t.calendar_id, c.action): (c.start_at, c.end_at)
        for t in planned.targets
        for c in t.changes
    }


def test_an_all_day_blocks_days_are_shown_in_its_target_calendars_zone(
    world: World, unique: str
) -> None:
    engine = engine_at(world, FixedClock(NOW))
    work = world.account(f"work-{unique}@example.com")["primary"]  # Europe/Berlin
    cals = world.account(f"home-{unique}@example.com", "Holiday")
    home, holiday = cals["primary"], cals["Holiday"]
    world.configure(work, home, holiday, include_all_day=True)
    world.execute(
        sa.update(Calendar).where(Calendar.id == holiday.id).values(time_zone="Pacific/Honolulu")
    )
    offsite = world.insert(work, summary="Offsite", **DAY)

    created = _shown(engine.dry_run(world.user(), [work.id], full=True))

    assert created == {
        (home.id, "create"): IN_BERLIN,
        (holiday.id, "create"): IN_HONOLULU,
    }

    sync_all(engine, work, home, holiday)
    world.service(work.email).events().delete(
        calendarId=work.provider_id, eventId=offsite["id"]
    ).execute()

    deleted = _shown(engine.dry_run(world.user(), [work.id], full=True))

    assert deleted == {
        (home.id, "delete"): IN_BERLIN,
        (holiday.id, "delete"): IN_HONOLULU,
    }
