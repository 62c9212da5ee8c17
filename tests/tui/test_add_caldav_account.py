"""The add-account dialog asks which provider, then connects a CalDAV account through the
server against a real Radicale: a refusal shows the server's own sentence with every field
kept, and the connected account is listed with its provider; snapshots of the choice and of
the CalDAV and iCloud forms (which write screenshots/add_account*.svg)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Static

from calsync_server.accounts import caldav_signin
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.add_account import AddAccountDialog
from calsync_tui.dialogs.caldav_login import ICLOUD_URL, CalDAVLoginDialog
from calsync_tui.launch.demo import DemoWorld
from calsync_tui.screens.accounts import AccountsScreen
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer, caldav_server, free_port
from tests.tui.conftest import (
    SIZE,
    dashboard,
    live,
    screen_text,
    snapshot_app,
    until,
)
from tests.tui.test_snapshots import Snap, keep

WRONG = "not-the-password-42"


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalDAVServer]:
    with caldav_server("radicale", tmp_path_factory.mktemp("radicale")) as server:
        yield server


def accounts(world: DemoWorld) -> list[dict[str, Any]]:
    with world.api() as client:
        found: list[dict[str, Any]] = client.get("api/v1/accounts").json()
    return found


def field(app: CalsyncApp, name: str) -> Input:
    return app.screen.query_one(f"#{name}", Input)


def said(app: CalsyncApp) -> str:
    """The form's refusal, as shown."""
    error = app.screen.query_one("#login-error", Static)
    return str(error.render()) if error.display else ""


async def type_into(pilot: Pilot[Any], app: CalsyncApp, name: str, text: str) -> None:
    """Click the field, empty it, type `text` key by key, as a person would."""
    await pilot.click(f"#{name}")
    await until(pilot, lambda: field(app, name).has_focus, what=f"#{name} focused")
    await pilot.press("home", "ctrl+k", *text)
    assert field(app, name).value == text


async def open_form(pilot: Pilot[Any], app: CalsyncApp, *choice: str) -> CalDAVLoginDialog:
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="the choice")
    await pilot.press(*choice)
    await until(pilot, lambda: isinstance(app.screen, CalDAVLoginDialog), what="the form")
    dialog = app.screen
    assert isinstance(dialog, CalDAVLoginDialog)
    return dialog


async def test_a_caldav_account_is_connected_from_the_dashboard_after_refusals_keep_the_fields(
    fresh_demo: DemoWorld, radicale: CalDAVServer
) -> None:
    CalDAVDriver(radicale).new_calendar("Family dinners")
    before = accounts(fresh_demo)
    app = dashboard(fresh_demo)
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("2")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == len(before), what="the demo's accounts")

        # Chosen with the arrows: Google first, Microsoft next, then CalDAV.
        dialog = await open_form(pilot, app, "down", "down", "enter")
        assert not dialog.icloud
        assert field(app, "password").password  # masked

        # Nothing typed: said in the form, no request made.
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "fill in the server URL" in said(app), what="the empty URL")
        assert field(app, "url").has_focus

        # An unreachable server: the server's sentence, the fields as typed.
        nowhere = f"http://127.0.0.1:{free_port()}/"
        await type_into(pilot, app, "url", nowhere)
        await type_into(pilot, app, "username", radicale.username)
        await type_into(pilot, app, "password", radicale.password)
        await pilot.press("enter")
        await until(pilot, lambda: "cannot reach" in said(app), what="the unreachable server")
        assert f"cannot reach the CalDAV server at {nowhere}" in said(app)
        assert [field(app, n).value for n in ("url", "username", "password")] == [
            nowhere,
            radicale.username,
            radicale.password,
        ]
        assert field(app, "url").has_focus
        assert radicale.password not in screen_text(app)  # still masked

        # A wrong password: the server's sentence, back on the password, the rest kept.
        await type_into(pilot, app, "url", radicale.url)
        await type_into(pilot, app, "password", WRONG)
        await pilot.press("enter")
        await until(pilot, lambda: "refused" in said(app), what="the refused password")
        assert "the CalDAV server refused the user name or password" in said(app)
        assert isinstance(app.screen, CalDAVLoginDialog)
        assert field(app, "password").has_focus
        assert (field(app, "url").value, field(app, "username").value) == (
            radicale.url,
            radicale.username,
        )
        assert field(app, "password").value == WRONG
        assert WRONG not in screen_text(app)
        assert accounts(fresh_demo) == before  # nothing stored

        # The right password: the dialog closes and the account is listed with its provider.
        await type_into(pilot, app, "password", radicale.password)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="the dialog gone")
        await until(pilot, lambda: table.row_count == len(before) + 1, what="the new account")
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert [radicale.username, "CalDAV"] in [[row[1], row[0]] for row in rows]
        assert any(f"{radicale.username} connected" in str(n.title) for n in app._notifications)

    # Rows from the API: the CalDAV account, active, its calendar imported with sync off.
    (added,) = [a for a in accounts(fresh_demo) if a["email"] == radicale.username]
    assert (added["provider"], added["state"]) == ("caldav", "active")
    with fresh_demo.api() as client:
        mine = [c for c in client.get("api/v1/calendars").json() if c["account_id"] == added["id"]]
    assert "Family dinners" in {c["name"] for c in mine}
    assert not any(c["sync_enabled"] for c in mine)


async def test_icloud_is_the_preset_with_the_apple_id_and_the_app_specific_password(
    fresh_demo: DemoWorld,
) -> None:
    # The dashboard's copy of the preset is the server's (it may not import the server).
    assert ICLOUD_URL == caldav_signin.ICLOUD_URL
    app = dashboard(fresh_demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await live(pilot)
        await pilot.press("2")
        dialog = await open_form(pilot, app, "i")
        assert dialog.icloud
        # No URL to type: the Apple ID and the masked password only.
        assert [f.id for f in dialog.query(Input)] == ["username", "password"]
        assert field(app, "password").password
        assert dialog.url() == ICLOUD_URL
        assert "Apple ID" in screen_text(app)
        # One sentence: where to make the password, and that it opens the whole account.
        note = " ".join(str(dialog.query_one("#login-note", Static).render()).split())
        assert "app-specific password at account.apple.com" in note
        assert "whole iCloud account" in note
        # Cancel: back to the accounts, nothing asked of the server.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="the accounts")


async def test_the_choice_offers_every_provider_and_escape_cancels(
    fresh_demo: DemoWorld,
) -> None:
    app = dashboard(fresh_demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await live(pilot)
        await pilot.press("2", "a")
        await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="the choice")
        options = app.screen.query_one(OptionList)
        offered = [options.get_option_at_index(i) for i in range(options.option_count)]
        assert [(o.id, o.disabled) for o in offered] == [
            ("google", False),
            ("microsoft", False),
            ("caldav", False),
            ("icloud", False),
        ]
        assert "coming" not in screen_text(app)
        await pilot.press("end")
        assert options.highlighted_option is not None
        assert options.highlighted_option.id == "icloud"
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="the accounts")


# -- snapshots: the demo's accounts behind the dialog, the clocks standing still -----------------

WIDE, SMALL = SIZE, (80, 24)
SIZES = [pytest.param(WIDE, id="wide"), pytest.param(SMALL, id="80x24")]


async def _accounts_then(pilot: Pilot[Any], *keys: str) -> None:
    app = pilot.app
    assert isinstance(app, CalsyncApp)
    await live(pilot)
    await pilot.press("2")
    table = app.screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count == 2, what="the demo's accounts")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="the choice")
    if keys:
        await pilot.press(*keys)
        await until(pilot, lambda: isinstance(app.screen, CalDAVLoginDialog), what="the form")
        for typed in app.screen.query(Input):
            typed.cursor_blink = False  # the picture must not catch the cursor half-way
    await live(pilot)
    await pilot.pause()


def _screenshot(request: pytest.FixtureRequest, size: tuple[int, int], name: str) -> None:
    if size == WIDE:
        keep(request, name)


@pytest.mark.parametrize("size", SIZES)
def test_provider_choice(
    snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _accounts_then(pilot)

    assert snap_compare(snapshot_app(demo), terminal_size=size, run_before=run_before)
    _screenshot(request, size, "add_account")


@pytest.mark.parametrize("size", SIZES)
def test_caldav_form(
    snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _accounts_then(pilot, "c")
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        app.screen.query_one("#url", Input).value = "https://caldav.fastmail.com/dav/"
        app.screen.query_one("#username", Input).value = "alex.morgan@fastmail.com"
        app.screen.query_one("#password", Input).value = "an app password"
        await pilot.pause()

    assert snap_compare(snapshot_app(demo), terminal_size=size, run_before=run_before)
    _screenshot(request, size, "add_account_caldav")


@pytest.mark.parametrize("size", SIZES)
def test_icloud_form(
    snap_compare: Snap, demo: DemoWorld, request: pytest.FixtureRequest, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _accounts_then(pilot, "i")

    assert snap_compare(snapshot_app(demo), terminal_size=size, run_before=run_before)
    _screenshot(request, size, "add_account_icloud")
