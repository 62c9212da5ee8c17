"""Why a block is there, from the Busy blocks screen (issue 19: a key on the dashboard's block
rows): enter on a row shows the server's explain of the event the block keeps."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.explain import ExplainDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.busy_blocks import BusyBlocksScreen
from calsync_tui.widgets.row_table import RowTable
from tests.tui.conftest import SIZE, busy_blocks_shown, live, screen_text, snapshot_app, until
from tests.tui.test_snapshots import Snap, keep


async def _blocks_shown(pilot: Pilot[Any], total: int) -> BusyBlocksScreen:
    screen = await busy_blocks_shown(pilot, total)
    await live(pilot)
    return screen


def _block_rows(world: DemoWorld) -> list[dict[str, Any]]:
    with world.api() as client:
        return list(client.get("api/v1/busy-blocks", params={"limit": 500}).json()["items"])


async def test_enter_on_a_block_explains_the_event_it_keeps(three_demo: DemoWorld) -> None:
    """The dialog names the event the block under the cursor keeps (by the API's own rows: the
    block's source event) and, for the block's calendar, the block with who wrote it."""
    blocks = _block_rows(three_demo)
    app = snapshot_app(three_demo)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _blocks_shown(pilot, len(blocks))
        table = screen.query_one(RowTable)
        table.focus()
        await pilot.press("down", "down")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExplainDialog), what="the dialog")
        dialog = app.screen
        assert isinstance(dialog, ExplainDialog)
        await until(pilot, lambda: dialog.explained is not None, what="the explain")
        explained = dialog.explained
        assert explained is not None
        # The row under the cursor is the block whose source event was explained.
        shown = table.rows[table.cursor_row]
        block = next(b for b in blocks if str(b["source_event_id"]) == shown[-2][0])
        assert explained.event_id == block["source_event_id"]
        assert explained.verdict == "blocks"
        here = next(t for t in explained.targets if t.calendar_id == block["target_calendar_id"])
        assert any(b.summary == block["summary"] for b in here.blocks)
        text = screen_text(app)
        assert (explained.title or "(no title)") in text
        assert "written by calsync" in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, BusyBlocksScreen), what="the table")


def test_explain_block_picture(
    snap_compare: Snap, three_demo: DemoWorld, request: pytest.FixtureRequest
) -> None:
    total = len(_block_rows(three_demo))

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        screen = await _blocks_shown(pilot, total)
        screen.query_one(RowTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExplainDialog), what="the dialog")
        dialog = app.screen
        assert isinstance(dialog, ExplainDialog)
        await until(pilot, lambda: dialog.explained is not None, what="the explain")
        await pilot.pause()

    assert snap_compare(snapshot_app(three_demo), terminal_size=SIZE, run_before=run_before)
    keep(request, "explain_block")
