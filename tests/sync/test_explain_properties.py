"""Explain agrees with the planner by construction (issue 19's acceptance): over random worlds
with every combination of the user's rules, explain's verdict on an event in a target (read
from the trace of the whole user's plan) is "blocks" exactly when planning that event alone
puts a block there, and every block explain names for it is one the plan writes."""

from __future__ import annotations

from hypothesis import given

from calsync_server.sync.planner import plan_busy_blocks, second_copies, source_key
from calsync_server.sync.rules import CalendarRules
from calsync_server.sync.verdicts import PlanTrace, Verdict, verdict_in
from tests.sync.builders import google_ids
from tests.sync.test_planner_properties import PROPERTY_SETTINGS
from tests.sync.test_rule_properties import World, worlds


@PROPERTY_SETTINGS
@given(worlds())
def test_explains_verdict_is_whether_a_block_is_planned(
    drawn: tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]],
) -> None:
    world, rules, _ = drawn
    world = world.with_rules(rules)
    trace = PlanTrace()
    whole = plan_busy_blocks(
        world.calendars,
        world.events(),
        [],
        now=world.now,
        time_zone=world.time_zone,
        horizon_days=world.horizon_days,
        block_id=google_ids,
        trace=trace,
    )
    written = {(d.target_calendar_id, d.source_key) for d in whole.creates}
    copies = second_copies(world.calendars)
    by_id = world.by_id
    for event in world.events():
        source = by_id[event.calendar_id]
        key = source_key(source, event.event.id)
        alone = plan_busy_blocks(
            world.calendars,
            [event],
            [],
            now=world.now,
            time_zone=world.time_zone,
            horizon_days=world.horizon_days,
            block_id=google_ids,
        )
        for target in world.calendars:
            if target.id == source.id:
                continue
            verdict = verdict_in(trace, key, target, copies.get(target.id))
            planned = any(d.target_calendar_id == target.id for d in alone.creates)
            assert (verdict is Verdict.BLOCKS) == planned, (event.event.id, target.id, verdict)
            named = trace.blocks.get((target.id, key), [])
            if verdict is Verdict.BLOCKS:
                assert named
                assert {(target.id, k) for k in named} <= written
            # Merging aside, the blocks explain names are the event's own.
            if not target.rules.merge:
                assert sorted(named) == sorted(
                    d.source_key for d in alone.creates if d.target_calendar_id == target.id
                )
