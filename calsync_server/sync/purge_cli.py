"""`calsync purge`: show the blocks calsync's mark finds at the providers, ask, delete them, and
say what became of each calendar's (deleted, already gone, failed in the provider's words)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from sqlmodel import Session, col, select

if TYPE_CHECKING:
    from calsync_server.cli import CalsyncContext
    from calsync_server.runtime import Runtime
    from calsync_server.sync.purge import PurgeCalendar, PurgePlan, PurgeScope

# Blocks shown per calendar before "and N more".
SHOWN = 3


@contextmanager
def _runtime(calsync: CalsyncContext) -> Iterator[Runtime]:
    """The database at the latest schema and the home's credential key; nothing syncs here."""
    from calsync_server.runtime import Runtime

    runtime = Runtime(calsync.settings, background=False)
    try:
        runtime.prepare()
        yield runtime
    finally:
        runtime.db.dispose()


def _scope(
    runtime: Runtime, user: str | None, all_users: bool, account: str | None, calendar: str | None
) -> PurgeScope:
    """The scope the options name; a name that fits nothing (or several) is refused."""
    from calsync_server.accounts.users import UserError, find_user
    from calsync_server.db.models import Account, Calendar, User
    from calsync_server.sync.purge import PurgeScope

    with Session(runtime.db) as session:
        user_id: int | None = None
        if user is not None:
            try:
                user_id = find_user(session, user).id
            except UserError as exc:
                raise click.BadParameter(str(exc), param_hint="--user") from None
        elif not all_users and account is None and calendar is None:
            people = list(session.exec(select(User.name)))
            if len(people) > 1:
                raise click.UsageError(
                    f"this server has {len(people)} users ({', '.join(sorted(people))}): name "
                    "one with --user, or purge everyone's blocks with --all-users"
                )
        account_id: int | None = None
        if account is not None:
            query = select(Account)
            if user_id is not None:
                query = query.where(Account.user_id == user_id)
            matches = [a for a in session.exec(query) if str(a.id) == account or a.email == account]
            if len(matches) != 1:
                problem = "no account" if not matches else "several accounts"
                raise click.BadParameter(
                    f"{problem} {account!r} (an id or an address; see `calsync accounts list`)",
                    param_hint="--account",
                )
            account_id = matches[0].id
        calendar_id: int | None = None
        if calendar is not None:
            query2 = select(Calendar, Account).join(Account, col(Calendar.account_id) == Account.id)
            if user_id is not None:
                query2 = query2.where(Account.user_id == user_id)
            if account_id is not None:
                query2 = query2.where(Account.id == account_id)
            found = [
                c
                for c, _ in session.exec(query2)
                if str(c.id) == calendar or c.name.casefold() == calendar.casefold()
            ]
            if len(found) != 1:
                problem = "no calendar" if not found else "several calendars named"
                raise click.BadParameter(
                    f"{problem} {calendar!r} (an id or a name; see `calsync calendars list`)",
                    param_hint="--calendar",
                )
            calendar_id = found[0].id
    return PurgeScope(user_id=user_id, account_id=account_id, calendar_id=calendar_id)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _when(block_start: object) -> str:
    from calsync_server.providers.model import EventTime

    assert isinstance(block_start, EventTime)
    if block_start.day is not None:
        return f"{block_start.day:%a %Y-%m-%d} (all day)"
    return f"{block_start.to_utc():%a %Y-%m-%d %H:%M} UTC"


def _where(found: PurgeCalendar) -> str:
    return f"{found.name} (calendar {found.calendar_id}, {found.account_email}, {found.provider})"


def show_plan(plan: PurgePlan) -> None:
    click.echo("calsync's blocks, found at the providers by calsync's mark:")
    for found in plan.calendars:
        if found.error is not None:
            click.echo(f"  {_where(found)}: cannot be listed: {found.error}")
            continue
        if not found.found:
            click.echo(f"  {_where(found)}: none")
            continue
        click.echo(f"  {_where(found)}: {_plural(len(found.found), 'block')}")
        for block in found.found[:SHOWN]:
            click.echo(f"      {_when(block.start)}  {block.title or '(no title)'}")
        if len(found.found) > SHOWN:
            click.echo(f"      and {len(found.found) - SHOWN} more")
    for note in plan.skipped:
        click.echo(f"  skipped {note}")


def show_outcome(plan: PurgePlan) -> int:
    """What became of each calendar's blocks; the exit status (1 when anything is left)."""
    left = 0
    for found in plan.calendars:
        if found.error is not None:
            left += 1
            continue
        if not found.found:
            continue
        line = f"  {_where(found)}: {found.deleted} deleted"
        if found.already_gone:
            line += f", {found.already_gone} already gone"
        if found.failed:
            line += f", {len(found.failed)} failed"
        if found.stopped == "source":
            line += "; now a source only: calsync writes no blocks here"
        elif found.stopped == "off":
            line += "; sync turned off"
        click.echo(line)
        for failure in found.failed:
            click.echo(f"      {_when(failure.block.start)}: {failure.reason}")
        left += len(found.failed)
    if left:
        click.echo(
            "Some blocks are left (or a calendar could not be listed): run `calsync purge` "
            "again to finish.",
            err=True,
        )
    receiving = [c for c in plan.receiving if not c.stopped]
    if receiving:
        names = ", ".join(c.name for c in receiving)
        click.echo(
            f"Sync is still on for {names}: the next sync writes their blocks again. To stop "
            "that, run `calsync purge --stop-sync` or turn sync off for them "
            "(`calsync calendars set ID --no-sync`)."
        )
    return 1 if left or plan.skipped else 0


@click.command("purge")
@click.option("--user", default=None, help="Only this person's accounts (NAME or ID).")
@click.option("--all-users", is_flag=True, help="Every person's accounts on this server.")
@click.option("--account", default=None, help="Only this account (its id or address).")
@click.option("--calendar", default=None, help="Only this calendar (its id or name).")
@click.option(
    "--stop-sync",
    is_flag=True,
    help="Also make these calendars stop receiving blocks (role source, or sync off for a "
    "target only), so the next sync does not write them again.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge(
    calsync: CalsyncContext,
    user: str | None,
    all_users: bool,
    account: str | None,
    calendar: str | None,
    stop_sync: bool,
    yes: bool,
) -> None:
    """Delete every block of calsync's, found at the providers by calsync's mark (not by the
    database): after a lost database, or to leave calsync. The person's own events are never
    touched. Shows what goes and asks first."""
    from calsync_server.sync.purge import PurgeError, find_blocks, purge_blocks

    with _runtime(calsync) as runtime:
        scope = _scope(runtime, user, all_users, account, calendar)
        try:
            plan = find_blocks(runtime.engine, scope)
        except PurgeError as exc:
            raise click.ClickException(str(exc)) from None
        show_plan(plan)
        if not plan.found:
            click.echo("Nothing to delete.")
            raise SystemExit(1 if plan.skipped or any(c.error for c in plan.calendars) else 0)
        receiving = plan.receiving
        if receiving and not stop_sync:
            click.echo(
                f"Sync is on for {', '.join(c.name for c in receiving)}: the next sync would "
                "write their blocks again."
            )
            if not yes:
                stop_sync = click.confirm(
                    "Also stop calsync writing blocks into them (a calendar that also gives "
                    "blocks becomes a source only; a target only has sync turned off)?",
                    default=False,
                )
        calendars = sum(1 for c in plan.calendars if c.found)
        if not yes:
            click.confirm(
                f"Delete {_plural(plan.found, 'block')} from {_plural(calendars, 'calendar')}?",
                abort=True,
            )
        purge_blocks(runtime.engine, plan, stop_receiving=stop_sync)
        turned_off = [c.calendar_id for c in plan.calendars if c.stopped == "off"]
        if turned_off:
            # Calendars whose sync went off need no push channel any more.
            runtime.channels.stop_calendar_channels(turned_off)
        status = show_outcome(plan)
    raise SystemExit(status)
