"""The dashboard on an empty server says how to begin; a lost server shows in the header and
the stream comes back by itself when the server does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from calsync_server.app import create_app
from calsync_server.serving import bound_socket, serve_in_thread
from calsync_tui.app import CalsyncApp
from calsync_tui.client import CalsyncApi
from calsync_tui.launch.embedded import embedded_server
from calsync_tui.screens.overview import OverviewScreen
from calsync_tui.stream import ConnectionState
from calsync_tui.widgets.header import HeaderBar
from shared.settings import load_settings
from tests.tui.conftest import SIZE, live, until


async def test_first_run_welcomes_and_names_the_way_in(tmp_path: Path) -> None:
    settings = load_settings({"home": str(tmp_path / "home")}, environ={})
    with embedded_server(settings) as server:
        app = CalsyncApp(CalsyncApi(server.url, server.token))
        async with app.run_test(size=SIZE) as pilot:
            await live(pilot)
            screen = app.screen
            assert isinstance(screen, OverviewScreen)
            await until(pilot, lambda: screen.data is not None, what="the overview")
            welcome = screen.query_one("#welcome")
            assert welcome.display
            assert "calsync demo" in str(welcome.render())


async def test_lost_server_shows_and_the_stream_reconnects(tmp_path: Path) -> None:
    settings = load_settings({"home": str(tmp_path / "home")}, environ={})
    sock = bound_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    first = serve_in_thread(create_app(settings), sock=sock, ready_path="healthz")
    served = first.__enter__()
    token = (tmp_path / "home" / "api-token").read_text().strip()
    app = CalsyncApp(CalsyncApi(served.url, token))
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await asyncio.to_thread(first.__exit__, None, None, None)
        await until(pilot, lambda: app.connection is ConnectionState.RECONNECTING, what="the loss")
        header = app.screen.query_one(HeaderBar)
        await until(pilot, lambda: "reconnecting" in str(header.render()), what="the header")
        again = serve_in_thread(
            create_app(settings), sock=bound_socket("127.0.0.1", port), ready_path="healthz"
        )
        await asyncio.to_thread(again.__enter__)
        try:
            await until(
                pilot,
                lambda: app.connection is ConnectionState.LIVE,
                deadline_s=20,
                what="the stream back",
            )
            await until(pilot, lambda: "live" in str(header.render()), what="the header live")
        finally:
            await asyncio.to_thread(again.__exit__, None, None, None)
