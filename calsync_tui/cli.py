"""The `calsync` command: the server's commands plus `tui` (also the default) and `demo`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from calsync_server.cli import CalsyncContext, cli, pass_calsync
from calsync_server.cli import main as server_main

# How far ahead `calsync demo` syncs (the week view shows blocks up to there).
DEMO_HORIZON_DAYS = 28

# `calsync` alone opens the dashboard, so the group runs without a subcommand.
cli.invoke_without_command = True


def run_dashboard(
    url: str, token: str, log_home: Path | None = None, mode: str | None = None
) -> None:
    """Run the dashboard in this terminal until the user quits (Textual imported only here);
    `mode` is the screen it opens on (the overview unless told)."""
    from calsync_tui.app import CalsyncApp
    from calsync_tui.client import CalsyncApi

    if log_home is not None:
        from calsync_tui.launch.embedded import log_to_file

        log_to_file(log_home)
    CalsyncApp(CalsyncApi(url, token), mode=mode).run()


@cli.result_callback()
def _default_to_tui(result: Any, /, **flags: Any) -> None:
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui, server_url=None, token=None)


@cli.command("tui")
@click.option(
    "--server",
    "server_url",
    default=None,
    help="URL of a running calsync server (default: embedded).",
)
@click.option(
    "--token",
    default=None,
    help="Your API token (`calsync users add`); default: CALSYNC_API_TOKEN, the default user's.",
)
@pass_calsync
def tui(calsync: CalsyncContext, server_url: str | None, token: str | None) -> None:
    """The dashboard: with a server embedded on the default database, or against --server."""
    settings = calsync.settings
    if server_url is not None:
        token = token or settings.api_token or _stored_token(settings.home)
        if not token:
            raise click.UsageError(
                "--server needs an API token: --token, CALSYNC_API_TOKEN, or the server's "
                "api-token file in CALSYNC_HOME"
            )
        run_dashboard(server_url, token)
        return
    from calsync_tui.launch.embedded import embedded_server, log_to_file

    log_to_file(settings.home)
    with embedded_server(settings) as server:
        # Any user of the database: the embedded server answers each token as its own user.
        run_dashboard(server.url, token or server.token, settings.home)


def _stored_token(home: Path) -> str | None:
    try:
        return (home / "api-token").read_text().strip() or None
    except OSError:
        return None


@cli.command("demo")
@click.option(
    "--home",
    "demo_home",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo's data here (default: a fresh temporary directory).",
)
def demo(demo_home: Path | None) -> None:
    """Everything offline: one person's work on Microsoft 365 (the Graph emulator), personal
    calendar on Google (the Google emulator) and family calendar on CalDAV (Radicale), changes
    arriving in each, the server (push on loopback, CalDAV polled) and the dashboard."""
    from calsync_tui.launch.demo import demo_world
    from calsync_tui.launch.embedded import log_to_file

    with tempfile.TemporaryDirectory(prefix="calsync-demo-") as temporary:
        home = demo_home or Path(temporary)
        log_to_file(home)
        # Four weeks ahead, not the usual 90 days: the first syncs write a third of the
        # blocks (the daily stand-ups' and school runs' instances), so the live changes
        # arriving every few seconds are not queued behind them for long (issue 20).
        with demo_world(home, live=True, settings={"horizon_days": DEMO_HORIZON_DAYS}) as world:
            # The week first: three providers' calendars and their blocks at a glance.
            run_dashboard(world.server.url, world.server.token, home, mode="week")


def main(argv: list[str] | None = None) -> None:
    server_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
