"""The week view against the three-provider demo at a fixed instant: pictures at 80x24 and
200x60 (README shows them), and what its keys do: weeks, this week, an event's details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from textual.pilot import Pilot

from calsync_server.emulators.google import scenario
from calsync_tui.app import CalsyncApp
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.week import WeekScreen
from calsync_tui.widgets.week_grid import WeekGrid
from tests.tui.conftest import live, screen_text, snapshot_app, until
from tests.tui.test_snapshots import keep

Snap = Callable[..., bool]
MONDAY = date(2025, 3, 10)  # DAY is that week's Wednesday


def week(app: CalsyncApp) -> WeekScreen:
    screen = app.screen
    assert isinstance(screen, WeekScreen)
    return screen


async def shown(pilot: Pilot[Any], loads: int = 1) -> WeekScreen:
    app = pilot.app
    assert isinstance(app, CalsyncApp)
    await until(pilot, lambda: app.current_mode == "week", what="the week view")
    await until(pilot, lambda: week(app).loads >= loads, what="the week's data")
    await live(pilot)
    await pilot.pause()
    return week(app)


async def select(pilot: Pilot[Any], title: str, *, block: bool = False) -> None:
    """Click the item with this title (a block of it: its source's title) where the week
    draws it, and wait for the server's explain of its event. (A click, not the arrow keys
    through every item before it: each selection redraws the week.)"""
    screen = week(pilot.app)  # type: ignore[arg-type]
    by_event = {i.event_id: i for i in screen.items if not i.block}
    for item in screen.items:
        source = by_event.get(item.source_event_id) if item.block else item
        if item.block == block and source is not None and source.title == title:
            break
    else:
        raise AssertionError(f"no {'block of ' if block else ''}{title!r} in the week")
    grid = screen.query_one(WeekGrid)
    x, y = next(spot for spot, key in sorted(grid.hits.items()) if key == item.key)
    await pilot.click(WeekGrid, offset=(x, y))
    event_id = item.source_event_id if item.block else item.event_id
    await until(
        pilot,
        lambda: (
            screen.selected == item.key
            and screen.explained is not None
            and screen.explained.event_id == event_id
        ),
        what=f"the explain of {title!r}",
    )
    await pilot.pause()


@pytest.mark.parametrize(("size", "name"), [((80, 24), "week_80x24"), ((200, 60), "week")])
def test_week_picture(
    snap_compare: Snap,
    three_demo: DemoWorld,
    request: pytest.FixtureRequest,
    size: tuple[int, int],
    name: str,
) -> None:
    """The demo's week: three providers' calendars side by side, own events solid, calsync's
    blocks hatched, now marked on Wednesday; a block selected, its source named below."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await shown(pilot)
        await select(pilot, "Dentist", block=True)
        await pilot.pause()

    app = snapshot_app(three_demo, mode="week")
    assert snap_compare(app, terminal_size=size, run_before=run_before)
    keep(request, name)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_week_detail_picture(
    snap_compare: Snap, three_demo: DemoWorld, request: pytest.FixtureRequest, size: tuple[int, int]
) -> None:
    """The longest details the demo's week has (an event blocking in three calendars and not
    in the read-only one, which says why) readable whole at 80x24 as at 200x60: the panel
    takes the lines it needs, the week above gives them up."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await shown(pilot)
        await select(pilot, "Focus: quarterly planning")
        await pilot.pause()
        screen = week(pilot.app)  # type: ignore[arg-type]
        assert screen.explained is not None
        (holidays,) = [t for t in screen.explained.targets if t.verdict != "blocks"]
        # Its last words are on screen: nothing of the explain is cut off (wrapped lines
        # read as one).
        text = " ".join(screen_text(pilot.app).split())  # type: ignore[arg-type]
        assert "Your event: it makes you busy" in text
        assert f"✗ {holidays.calendar_name} ({holidays.reason})" in text

    app = snapshot_app(three_demo, mode="week")
    assert snap_compare(app, terminal_size=size, run_before=run_before)
    if size == (80, 24):
        keep(request, "week_detail_80x24")


async def test_week_moves_through_weeks_and_back_to_this_one(three_demo: DemoWorld) -> None:
    app = snapshot_app(three_demo, mode="week")
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await shown(pilot)
        assert screen.monday == MONDAY
        assert "Week of Mon 10 Mar to Sun 16 Mar 2025  this week" in screen_text(app)
        titles = {i.title for i in screen.items}
        # Every provider's calendar is there: Graph's stand-up, Google's dentist, the family's
        # pick-up on Radicale, and calsync's blocks of them (from today on: calsync reads
        # nothing before the day it runs, so Monday and Tuesday are empty).
        assert {"Team stand-up", "Dentist", "School pick-up", "Busy"} <= titles
        assert "Release 2.0" not in titles  # next week's
        assert all(i.first_day >= date(2025, 3, 12) for i in screen.items)
        assert "from today on" in screen_text(app)

        await pilot.press("right")
        await until(pilot, lambda: screen.loads >= 2 and screen.monday == date(2025, 3, 17))
        await pilot.pause()
        assert "Week of Mon 17 Mar to Sun 23 Mar 2025" in screen_text(app)
        assert "2025  this week" not in screen_text(app)
        assert "Release 2.0" in {i.title for i in screen.items}

        await pilot.press("left_square_bracket", "left_square_bracket")
        await until(pilot, lambda: screen.monday == date(2025, 3, 3) and screen.loads >= 4)
        await pilot.pause()
        assert "Week of Mon 03 Mar to Sun 09 Mar 2025" in screen_text(app)

        await pilot.press("t")
        await until(pilot, lambda: screen.monday == MONDAY)
        await until(pilot, lambda: "2025  this week" in screen_text(app), what="this week")


async def test_selecting_shows_why_an_event_blocks_or_not(three_demo: DemoWorld) -> None:
    """An event's details are the server's explain (issue 19): its verdict and, per other
    calendar, a block there or why not; a block names the event it keeps."""
    app = snapshot_app(three_demo, mode="week")
    async with app.run_test(size=(200, 60)) as pilot:
        await shown(pilot)
        assert "selects an event" in screen_text(app)
        # The arrow keys select the week's items in turn, and show each one's explain.
        screen = week(app)
        await pilot.press("down")
        await pilot.press("down")
        second = screen.items[1]
        await until(
            pilot,
            lambda: screen.selected == second.key and screen.explained is not None,
            what="the second item's explain",
        )
        await pilot.press("up")
        await until(pilot, lambda: screen.selected == screen.items[0].key, what="the first")
        await select(pilot, "Focus: quarterly planning")
        text = screen_text(app)
        assert "Focus: quarterly planning  Calendar (Microsoft 365)  Thu 13 Mar 13:00-16:00" in text
        assert "Your event: it makes you busy" in text
        assert "✓ Family" in text
        assert f"✓ {scenario.PERSONAL}" in text
        # The read-only holidays calendar receives no block, and says why.
        assert "✗ United Kingdom holidays (" in text

        await select(pilot, "Lunch & learn (optional)")
        text = screen_text(app)
        assert "Your event: the event shows as free" in text
        assert "✗ Family" in text

        await select(pilot, "Dentist", block=True)
        text = screen_text(app)
        assert f'calsync\'s busy block: "Dentist" in {scenario.PERSONAL} (Google)' in text
        assert "Here: it makes you busy" in text
        await pilot.press("escape")
        await pilot.pause()
        assert "selects an event" in screen_text(app)

        # A click on an event drawn in the week selects it too.
        screen = week(app)
        grid = screen.query_one(WeekGrid)
        (dentist,) = [i for i in screen.items if i.title == "Dentist"]
        x, y = next(spot for spot, key in sorted(grid.hits.items()) if key == dentist.key)
        await pilot.click(WeekGrid, offset=(x, y))
        await until(
            pilot,
            lambda: screen.explained is not None and screen.explained.title == "Dentist",
            what="the clicked event's explain",
        )
        await pilot.pause()
        assert screen.selected == dentist.key
        assert "Dentist  alex.morgan@personal.example.com (Google)" in screen_text(app)
