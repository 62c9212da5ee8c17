"""The add-account dialog signs a Microsoft account in the way it signs Google's: the server's
sign-in link (MSAL's, against the Graph emulator's identity endpoints over TLS), the browser's
consent, and the account appears by itself, listed as Microsoft; a server without an Entra app
says what to set; a snapshot of that refusal (stable: no link, no state in it)."""

from __future__ import annotations

import asyncio
import html
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_tui.app import CalsyncApp
from calsync_tui.dialogs.add_account import AddAccountDialog, SignInLinkDialog
from calsync_tui.launch.demo import DemoWorld, demo_world
from calsync_tui.screens.accounts import AccountsScreen
from tests.support.clock import SteadyClock
from tests.support.drivers.microsoft import CLIENT_ID, GraphEndpoints, MicrosoftDriver
from tests.tui.conftest import (
    DAY,
    SERVER_NOW,
    SIZE,
    dashboard,
    live,
    snapshot_app,
    until,
)
from tests.tui.test_snapshots import Snap

SMALL = (80, 24)


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphEndpoints]:
    with run_graph_emulator(GraphEmulatorConfig()) as running:
        yield GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


@pytest.fixture
def microsoft_demo(tmp_path: Path, graph: GraphEndpoints) -> Iterator[DemoWorld]:
    """The demo (nothing synced), its server given an Entra app and the Graph emulator."""
    settings = {
        "workers": 1,
        "poll_interval_seconds": 3600.0,
        "microsoft_client_id": CLIENT_ID,
        "microsoft_graph_url": f"{graph.url}v1.0",
        "microsoft_login_url": graph.tls_url,
        "microsoft_ca_file": graph.ca_path,
    }
    with demo_world(
        tmp_path / "home",
        live=False,
        today=DAY,
        push=False,
        enable=False,
        settings=settings,
        clock=SteadyClock(SERVER_NOW),
        providers=("google",),  # the Google-only demo: its Microsoft account is signed in here
    ) as world:
        yield world


def consents(graph: GraphEndpoints, auth_url: str, email: str) -> str:
    """The person in the browser: Microsoft's sign-in (the emulator's, over TLS) shows its
    accounts (the link carries no hint), the person picks theirs and consents, and the browser
    is sent back to calsync; the page calsync answers."""
    tls = ssl.create_default_context(cafile=graph.ca_path)
    with httpx.Client(verify=tls, timeout=30) as browser:
        chooser = browser.get(auth_url)
        if chooser.status_code == 200:  # several accounts: pick this one
            links = {
                html.unescape(m[1]): html.unescape(m[0])
                for m in re.findall(r'<a href="([^"]+)">([^<]+)</a>', chooser.text)
            }
            chooser = browser.get(links[email])
        assert chooser.status_code == 302, chooser.text
        page = browser.get(chooser.headers["location"])
    assert page.status_code == 200, page.text
    return page.text


async def choose_microsoft(pilot: Pilot[Any], app: CalsyncApp) -> SignInLinkDialog:
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AddAccountDialog), what="the choice")
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, SignInLinkDialog), what="the sign-in")
    dialog = app.screen
    assert isinstance(dialog, SignInLinkDialog)
    return dialog


def body(dialog: SignInLinkDialog) -> str:
    return str(dialog.query_one("#add-body", Static).render())


async def test_a_microsoft_account_signs_in_from_the_dashboard_and_appears(
    microsoft_demo: DemoWorld, graph: GraphEndpoints
) -> None:
    person = MicrosoftDriver(graph)
    try:
        team = person.new_calendar("Team")
        app = dashboard(microsoft_demo)
        async with app.run_test(size=SIZE) as pilot:
            await live(pilot)
            await pilot.press("2")
            table = app.screen.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 2, what="the demo's two accounts")

            dialog = await choose_microsoft(pilot, app)
            assert "Add a Microsoft account" in str(
                dialog.query_one(".dialog-title", Static).render()
            )
            await until(pilot, lambda: dialog.auth_url is not None, what="the sign-in link")
            auth_url = dialog.auth_url
            assert auth_url is not None
            assert auth_url in body(dialog)
            # A real sign-in the server started: MSAL's authorize URL at the common authority,
            # coming back to this server (on localhost, as Entra registers it), with PKCE.
            assert auth_url.startswith(f"{graph.tls_url}common/oauth2/v2.0/authorize?")
            query = parse_qs(urlsplit(auth_url).query)
            port = urlsplit(microsoft_demo.server.url).port
            assert query["redirect_uri"] == [f"http://localhost:{port}/oauth/microsoft/callback"]
            assert query["client_id"] == [CLIENT_ID]
            assert query["code_challenge_method"] == ["S256"]
            assert query["prompt"] == ["select_account"]

            page = await asyncio.to_thread(consents, graph, auth_url, person.email)
            assert f"{person.email} is connected" in page
            await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="dialog gone")
            await until(pilot, lambda: table.row_count == 3, what="three accounts on screen")
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
            assert ["Microsoft", person.email] in [row[:2] for row in rows]
            assert any("account connected" in str(n.message) for n in app._notifications)
        with microsoft_demo.api() as client:
            (added,) = [
                a for a in client.get("api/v1/accounts").json() if a["email"] == person.email
            ]
            assert (added["provider"], added["state"]) == ("microsoft", "active")
            mine = [
                c for c in client.get("api/v1/calendars").json() if c["account_id"] == added["id"]
            ]
        assert {c["provider_calendar_id"] for c in mine} == {person.default_calendar, team}
        assert not any(c["sync_enabled"] for c in mine)
    finally:
        person.close()


async def test_without_an_entra_app_the_dialog_says_what_the_server_needs(
    fresh_demo: DemoWorld,
) -> None:
    app = dashboard(fresh_demo)
    async with app.run_test(size=SMALL) as pilot:
        await live(pilot)
        await pilot.press("2")
        dialog = await choose_microsoft(pilot, app)
        await until(pilot, lambda: "cannot start" in body(dialog), what="the refusal")
        said = " ".join(body(dialog).split())
        assert "The server cannot start a Microsoft sign-in" in said
        assert "CALSYNC_MICROSOFT_CLIENT_ID" in said
        assert dialog.auth_url is None
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, AccountsScreen), what="the accounts")
    with fresh_demo.api() as client:
        assert len(client.get("api/v1/accounts").json()) == 2  # nothing added


@pytest.mark.parametrize("size", [pytest.param(SIZE, id="wide"), pytest.param(SMALL, id="80x24")])
def test_microsoft_without_an_app(
    snap_compare: Snap, demo: DemoWorld, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CalsyncApp)
        await live(pilot)
        await pilot.press("2")
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2, what="the demo's accounts")
        dialog = await choose_microsoft(pilot, app)
        await until(pilot, lambda: "cannot start" in body(dialog), what="the refusal")
        await pilot.pause()

    assert snap_compare(snapshot_app(demo), terminal_size=size, run_before=run_before)
