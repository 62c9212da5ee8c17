"""`calsync explain`, `calsync sync --dry-run` and `calsync sync --confirm-deletes`: why an
event blocks or not, what a sync would change now (nothing written), and letting the safety
catch's held deletes go."""

from __future__ import annotations

from datetime import datetime

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from calsync_server.db.engine import create_db_engine, upgrade_database
from calsync_server.db.models import Account, Calendar, User
from calsync_server.sync import holds, preview
from calsync_server.sync.engine import SyncEngine
from shared.clock import SystemClock
from shared.schemas import MAX_EXPLAINED, ExplainEvent, PlanPreview
from shared.settings import Settings

SHOWN_CHANGES = 20  # per target in the terminal; the API gives more


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%a %d %b %H:%M") if moment is not None else "?"


def _user_of(session: Session, calendar_id: int) -> int:
    row = session.exec(
        select(Account.user_id)
        .join(Calendar, col(Calendar.account_id) == Account.id)
        .where(Calendar.id == calendar_id)
    ).first()
    if row is None:
        raise click.BadParameter(f"no calendar with id {calendar_id}", param_hint="--calendar")
    return int(row)


def _opened(settings: Settings) -> sa.Engine:
    db = create_db_engine(settings.database_url_resolved)
    upgrade_database(db)
    return db


# -- explain -----------------------------------------------------------------------------------


def run_explain(
    settings: Settings,
    *,
    event_id: int | None,
    calendar_id: int | None,
    provider_event_id: str | None,
    title: str | None,
    at: datetime | None,
) -> int:
    console = Console()
    db = _opened(settings)
    now = SystemClock().now()
    try:
        with Session(db, autoflush=False) as session:
            explained: list[ExplainEvent] = []
            for user_id in session.exec(select(User.id)):
                assert user_id is not None
                rows, _more = preview.find_events(
                    session,
                    user_id,
                    event_id=event_id,
                    calendar_id=calendar_id,
                    provider_event_id=provider_event_id,
                    title=title,
                    at=at,
                    limit=MAX_EXPLAINED,
                )
                if rows:
                    found = preview.plan_user(
                        session, user_id, now, settings.horizon_days, extra=rows
                    )
                    explained += [preview.explain(session, found, row) for row in rows]
            session.rollback()
    finally:
        db.dispose()
    if not explained:
        console.print("No event found.")
        return 1
    for event in explained:
        _print_explained(console, event)
    return 0


def _print_explained(console: Console, event: ExplainEvent) -> None:
    colour = "green" if event.verdict == "blocks" else "yellow"
    console.print(
        f'[bold]"{event.title or ""}"[/] in {event.calendar_name} '
        f"({_when(event.start_at)} - {_when(event.end_at)}), event {event.event_id}"
    )
    console.print(f"  [{colour}]{event.verdict}[/]: {event.reason}")
    for target in event.targets:
        console.print(
            f"  -> {target.calendar_name}: [{colour}]{target.verdict}[/] ({target.reason})"
        )
        for block in target.blocks:
            who = f", written by {block.written_by}" if block.written_by else ""
            when = f" at {_when(block.written_at)}" if block.written_at else ""
            log = f" in sync log {block.sync_log_id}" if block.sync_log_id else ""
            console.print(
                f'     block "{block.summary}" {_when(block.start_at)}: '
                f"{block.outcome_words}{who}{when}{log}"
            )


# -- the dry run and the confirmation ----------------------------------------------------------


def run_dry_run(settings: Settings, calendar_ids: tuple[int, ...], full: bool = False) -> int:
    console = Console()
    db = _opened(settings)
    try:
        with Session(db) as session:
            users: dict[int, list[int] | None] = {}
            for cid in calendar_ids:
                users[_user_of(session, cid)] = [*(users.get(_user_of(session, cid)) or []), cid]
            if not calendar_ids:
                users = {uid: None for uid in session.exec(select(User.id)) if uid is not None}
        engine = SyncEngine(db, settings, clock=SystemClock())
        for user_id, ids in users.items():
            _print_plan(console, engine.dry_run(user_id, ids, full=full), full)
    finally:
        db.dispose()
    return 0


def _print_plan(console: Console, plan: PlanPreview, full: bool = False) -> None:
    command = "calsync sync --full --dry-run" if full else "calsync sync --dry-run"
    table = Table(title=f"{command}: nothing was written")
    for column in ("calendar", "create", "update", "delete", "held"):
        table.add_column(column, justify="left" if column == "calendar" else "right")
    for target in plan.targets:
        table.add_row(
            target.calendar_name,
            str(target.creates),
            str(target.updates),
            str(target.deletes),
            f"[red]{target.held}" if target.held else "0",
        )
    console.print(table)
    for target in plan.targets:
        console.print(f"[bold]{target.calendar_name}[/]")
        for change in target.changes[:SHOWN_CHANGES]:
            console.print(
                f'  {change.action} "{change.summary}" {_when(change.start_at)}: {change.reason}'
            )
        more = target.creates + target.updates + target.deletes + target.held - SHOWN_CHANGES
        if more > 0:
            console.print(f"  ... and {more} more")
    if not plan.targets:
        console.print("Nothing to change.")
    for note in plan.notes:
        console.print(f"[yellow]{note}")


def confirm_deletes(settings: Settings, calendar_id: int) -> int:
    """Clear the calendar's hold; the caller then syncs it whole (which deletes them)."""
    db = _opened(settings)
    try:
        with Session(db) as session:
            calendar = session.get(Calendar, calendar_id)
            if calendar is None:
                raise click.BadParameter(
                    f"no calendar with id {calendar_id}", param_hint="--confirm-deletes"
                )
            if not calendar.held_deletes:
                click.echo(f"{calendar.name} holds no deletes: nothing to confirm.")
                return 0
            count = holds.confirm(session, calendar)
            session.commit()
            click.echo(f"{calendar.name}: {count} held deletes confirmed; syncing it now.")
            return count
    finally:
        db.dispose()
