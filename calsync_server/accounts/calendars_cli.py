"""`calsync calendars`: list the calendars and change one's settings (sync on or off, role, what
its blocks show, all-day, whether its blocks stay when sync is turned off, and the rules: title
filters, tentative, working hours, already invited, merging), over the JSON API like `calsync
accounts`."""

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
    if calendar.get("title_include"):
        said.append("only " + " | ".join(calendar["title_include"]))
    if calendar.get("title_exclude"):
        said.append("not " + " | ".join(calendar["title_exclude"]))
    if calendar.get("block_tentative") is False:
        said.append("tentative left out")
    hours = calendar.get("working_hours")
    if hours:
        said.append(f"hours {','.join(hours['days'])} {hours['start']}-{hours['end']}")
    if calendar.get("skip_invited"):
        said.append("skips invited")
    if calendar.get("merge_blocks"):
        said.append("merges blocks")
    return ", ".join(said)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hours(text: str) -> dict[str, Any] | str:
    """``mon-fri 09:00-17:00`` (days as a range or a comma list) or ``off``; the server checks
    the days and times and says what is wrong."""
    if text.strip().lower() == "off":
        return "off"
    try:
        days_text, times = text.split()
        start, end = times.split("-")
    except ValueError:
        raise click.BadParameter(
            f'"{text}" is not like "mon-fri 09:00-17:00" or "off"', param_hint="--hours"
        ) from None
    days: list[str] = []
    for part in days_text.split(","):
        first, _, last = part.partition("-")
        if last and first.lower()[:3] in _DAYS and last.lower()[:3] in _DAYS:
            a, b = _DAYS.index(first.lower()[:3]), _DAYS.index(last.lower()[:3])
            days += [_DAYS[(a + n) % 7] for n in range((b - a) % 7 + 1)]
        else:
            days.append(part)
    return {"days": days, "start": start, "end": end}


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
@click.option(
    "--include",
    "title_include",
    multiple=True,
    help="Only events whose title matches block (plain words, or /a regex/); repeatable.",
)
@click.option(
    "--exclude",
    "title_exclude",
    multiple=True,
    help="Events whose title matches do not block (plain words, or /a regex/); repeatable.",
)
@click.option("--no-filters", is_flag=True, default=False, help="Clear both title filters.")
@click.option(
    "--tentative/--no-tentative",
    "block_tentative",
    default=None,
    help="Tentative and unanswered invitations block (the default) or not.",
)
@click.option(
    "--hours",
    "working_hours",
    default=None,
    help='As a target: blocks only in working hours, e.g. "mon-fri 09:00-17:00", or "off".',
)
@click.option(
    "--skip-invited/--no-skip-invited",
    "skip_invited",
    default=None,
    help="As a target: no block for an event that already invites this calendar's account.",
)
@click.option(
    "--merge/--no-merge",
    "merge_blocks",
    default=None,
    help="As a target: overlapping or touching blocks become one.",
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
    if settings.pop("no_filters"):
        if settings["title_include"] or settings["title_exclude"]:
            raise click.UsageError("--no-filters clears the filters: give no --include/--exclude")
        settings["title_include"] = settings["title_exclude"] = []
    else:
        for name in ("title_include", "title_exclude"):
            settings[name] = list(settings[name]) or None
    if settings["working_hours"] is not None:
        settings["working_hours"] = _hours(settings["working_hours"])
    body = {name: value for name, value in settings.items() if value is not None}
    if not body:
        raise click.UsageError("say what to change, e.g. --sync or --keep-blocks-when-off")
    with _connect(calsync, server, token) as api:
        # A refusal (e.g. the same calendar synced through another account) is the server's
        # sentence, printed as the error.
        saved: dict[str, Any] = api.call("PATCH", f"/api/v1/calendars/{calendar_id}", json=body)
    click.echo(f"{saved['id']:>5}  {saved['name']}  ({_flags(saved)})")
