"""`calsync calendars`: list the calendars and change one's settings (sync on or off, role, what
its blocks show, all-day, whether its blocks stay when sync is turned off), over the JSON API
like `calsync accounts`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from calsync_server.accounts.cli import _connect, _server_options

if TYPE_CHECKING:
    from calsync_server.cli import CalsyncContext


@click.group("calendars")
def calendars() -> None:
    """Calendars: list them, turn sync on or off, change their settings."""


def _flags(calendar: dict[str, Any]) -> str:
    said = ["sync on" if calendar["sync_enabled"] else "sync off", calendar["role"]]
    if calendar["busy_title"] == "title":
        said.append("shows titles")
    if calendar["include_all_day"]:
        said.append("all-day blocks")
    if calendar.get("keep_blocks_when_off"):
        said.append("keeps blocks when off")
    if calendar["read_only"]:
        said.append("read-only")
    return ", ".join(said)


@calendars.command("list")
@_server_options
@click.pass_obj
def list_calendars(calsync: CalsyncContext, server: str | None, token: str | None) -> None:
    """Every calendar of every account, with its settings and counts."""
    with _connect(calsync, server, token) as api:
        found: list[dict[str, Any]] = api.call("GET", "/api/v1/calendars")
    if not found:
        click.echo("no calendars yet: add an account with `calsync accounts add google`")
        return
    for calendar in found:
        click.echo(
            f"{calendar['id']:>5}  {calendar['name']}  <{calendar['account_email']}>  "
            f"({_flags(calendar)}; {calendar['events']} events, "
            f"{calendar['busy_blocks']} blocks)"
        )


@calendars.command("set")
@click.argument("calendar_id", type=click.IntRange(min=1))
@click.option("--sync/--no-sync", "sync_enabled", default=None, help="Turn sync on or off.")
@click.option(
    "--role",
    type=click.Choice(["both", "source", "target"]),
    default=None,
    help="source: blocks time in the others; target: receives their blocks; both.",
)
@click.option(
    "--busy-title",
    type=click.Choice(["private", "title"]),
    default=None,
    help='What its events\' blocks show: "Busy" (private) or "Busy - <title>".',
)
@click.option(
    "--all-day/--no-all-day", "include_all_day", default=None, help="All-day events block time."
)
@click.option(
    "--keep-blocks-when-off/--no-keep-blocks-when-off",
    "keep_blocks_when_off",
    default=None,
    help="Keep the blocks it holds when its sync is turned off (default: they are removed).",
)
@_server_options
@click.pass_obj
def set_calendar(
    calsync: CalsyncContext,
    /,
    calendar_id: int,
    server: str | None,
    token: str | None,
    **settings: Any,
) -> None:
    """Change a calendar's settings; only the options given change."""
    body = {name: value for name, value in settings.items() if value is not None}
    if not body:
        raise click.UsageError("say what to change, e.g. --sync or --keep-blocks-when-off")
    with _connect(calsync, server, token) as api:
        # A refusal (e.g. the same calendar synced through another account) is the server's
        # sentence, printed as the error.
        saved: dict[str, Any] = api.call("PATCH", f"/api/v1/calendars/{calendar_id}", json=body)
    click.echo(f"{saved['id']:>5}  {saved['name']}  ({_flags(saved)})")
