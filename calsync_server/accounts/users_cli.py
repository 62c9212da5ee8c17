"""`calsync users`: the people of a household server, managed on its database directly (as
`calsync db upgrade`): add one (its API token is printed once), list, remove, rotate a token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from sqlmodel import Session

if TYPE_CHECKING:
    from calsync_server.cli import CalsyncContext
    from calsync_server.runtime import Runtime


@contextmanager
def _runtime(calsync: CalsyncContext) -> Iterator[Runtime]:
    """The database at the latest schema, with the default user made (as a server's start
    would), and the home's credential key for disconnects. No workers: nothing syncs here."""
    # Imported here: `calsync --help` should not pay for the server.
    from calsync_server.runtime import Runtime

    runtime = Runtime(calsync.settings, background=False)
    try:
        runtime.prepare()
        yield runtime
    finally:
        runtime.db.dispose()


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal is one line and exit status 1, not a traceback."""
    from calsync_server.accounts.users import UserError

    try:
        yield
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


def _show_token(token: str) -> None:
    click.echo(f"API token (shown only now; calsync keeps only its hash): {token}")
    click.echo("Use it with `calsync tui --token TOKEN` or as `Authorization: Bearer TOKEN`.")


@click.group("users")
def users() -> None:
    """The people of this server: each has their own accounts, calendars and API token."""


@users.command("add")
@click.argument("name")
@click.pass_obj
def add(calsync: CalsyncContext, name: str) -> None:
    """Add a person; prints their API token, once."""
    from calsync_server.accounts.users import add_user

    with _refusals(), _runtime(calsync) as runtime, Session(runtime.db) as session:
        user, token = add_user(session, name, runtime.clock.now())
        session.commit()
        click.echo(f"added user {user.name} (id {user.id})")
    _show_token(token)


@users.command("list")
@click.pass_obj
def list_users(calsync: CalsyncContext) -> None:
    """Every user, with their number of connected accounts."""
    from calsync_server.accounts.users import list_users as summaries

    with _runtime(calsync) as runtime, Session(runtime.db) as session:
        found = summaries(session)
    width = max([4, *(len(u.name) for u in found)])
    click.echo(f"{'ID':>5}  {'NAME':<{width}}  {'ACCOUNTS':>8}  CREATED")
    for user in found:
        created = user.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{user.id:>5}  {user.name:<{width}}  {user.accounts:>8}  {created} UTC")


@users.command("remove")
@click.argument("user")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def remove(calsync: CalsyncContext, user: str, yes: bool) -> None:
    """Remove a person (NAME or ID): every account of theirs is disconnected first (its busy
    blocks removed everywhere, its login revoked), then the user and their token go."""
    from sqlmodel import select

    from calsync_server.accounts.users import find_user, remove_user
    from calsync_server.db.models import Account

    with _refusals(), _runtime(calsync) as runtime:
        with Session(runtime.db) as session:
            found = find_user(session, user)
            assert found.id is not None
            user_id, name = found.id, found.name
            emails = [
                a.email for a in session.exec(select(Account).where(Account.user_id == user_id))
            ]
        if not yes:
            what = (
                f" and disconnect {len(emails)} account(s): {', '.join(emails)}" if emails else ""
            )
            click.confirm(
                f"Remove user {name} (id {user_id}){what}? Their busy blocks are removed from "
                "their calendars and their API token stops working.",
                abort=True,
            )
        reports = remove_user(runtime, user_id)
    for report in reports:
        click.echo(
            f"disconnected {report.email}: {report.blocks_deleted} busy blocks removed, "
            f"{report.channels_stopped} push channels stopped, token "
            f"{'revoked' if report.token_revoked else 'not revoked'}"
        )
        for note in report.notes:
            click.echo(f"  note: {note}")
    click.echo(f"removed user {name} (id {user_id})")


@users.command("rotate-token")
@click.argument("user")
@click.pass_obj
def rotate(calsync: CalsyncContext, user: str) -> None:
    """Give a person (NAME or ID) a new API token, printed once; the old one stops working."""
    from calsync_server.accounts.users import find_user, rotate_token

    with _refusals(), _runtime(calsync) as runtime, Session(runtime.db) as session:
        found = find_user(session, user)
        token = rotate_token(session, found, runtime.settings.home, runtime.settings.api_token)
        session.commit()
        click.echo(f"new API token for {found.name} (id {found.id}); the old one no longer works")
    _show_token(token)


@users.command("feed")
@click.argument("user")
@click.option("--rotate", is_flag=True, help="Make a new URL (the first, or a replacement).")
@click.option("--off", is_flag=True, help="Turn the feed off: its URL stops working.")
@click.pass_obj
def feed(calsync: CalsyncContext, user: str, rotate: bool, off: bool) -> None:
    """A person's (NAME or ID) free/busy feed: a secret iCalendar URL of their busy times, for
    a calendar calsync cannot write (subscribe to it by URL). Shown once when made; --rotate
    makes a new one and the old stops working."""
    from calsync_server.accounts.users import find_user
    from calsync_server.feed.keys import feed_of, remove_feed, rotate_feed

    if rotate and off:
        raise click.UsageError("--rotate and --off: choose one")
    with _refusals(), _runtime(calsync) as runtime, Session(runtime.db) as session:
        found = find_user(session, user)
        assert found.id is not None
        if off:
            removed = remove_feed(session, found.id)
            session.commit()
            click.echo(
                f"feed of {found.name} turned off: its URL no longer works"
                if removed
                else f"{found.name} has no feed"
            )
            return
        if not rotate:
            current = feed_of(session, found.id)
            if current is None:
                click.echo(f"{found.name} has no feed: `--rotate` makes one")
            else:
                click.echo(
                    f"{found.name} has a feed since {current.created_at:%Y-%m-%d %H:%M} UTC; "
                    "its URL was shown when made (calsync keeps only a hash): `--rotate` "
                    "makes a new one"
                )
            return
        address = rotate_feed(session, found.id, runtime.clock.now())
        session.commit()
        base = runtime.settings.public_url
        click.echo(f"new feed URL for {found.name} (shown only now; the old one no longer works):")
        if base:
            click.echo(f"  {base.rstrip('/')}{address.path}")
        else:
            click.echo(f"  http://<this server's address>{address.path}")
            click.echo("  (no public URL is set: a subscriber must reach this server's address)")
