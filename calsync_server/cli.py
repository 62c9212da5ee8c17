"""The `calsync` command line: settings from flags, then one subcommand per thing calsync does."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from calsync_server.accounts.calendars_cli import calendars
from calsync_server.accounts.cli import accounts
from calsync_server.accounts.users_cli import users
from calsync_server.sync.purge_cli import purge
from shared.settings import Settings, SettingsError, load_settings


class CalsyncContext:
    """What every subcommand gets: the flags given, turned into settings on first use."""

    def __init__(self, flags: dict[str, Any]) -> None:
        self.flags = flags
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags)
        return self._settings


pass_calsync = click.make_pass_decorator(CalsyncContext)


@click.group(invoke_without_command=False, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=str, default=None, help="Data directory (CALSYNC_HOME).")
@click.option(
    "--database-url", type=str, default=None, help="SQLAlchemy URL (CALSYNC_DATABASE_URL)."
)
@click.option(
    "--google-api-url",
    type=str,
    default=None,
    help="Root of the Google APIs, or of the emulator (CALSYNC_GOOGLE_API_URL).",
)
@click.pass_context
def cli(ctx: click.Context, /, **flags: Any) -> None:
    """calsync: mirror every busy moment into all your other calendars."""
    ctx.obj = CalsyncContext(flags)


@cli.group()
def db() -> None:
    """The database: migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_calsync
def db_upgrade(calsync: CalsyncContext, revision: str) -> None:
    """Create or migrate the database to the latest schema."""
    from calsync_server.db.engine import create_db_engine, current_revision, upgrade_database

    engine = create_db_engine(calsync.settings.database_url_resolved)
    try:
        upgrade_database(engine, revision)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@cli.command("sync")
@click.option(
    "--calendar", "calendar_ids", type=int, multiple=True, help="Calendar id (repeatable)."
)
@click.option("--full", is_flag=True, help="Full reconcile: fetch everything and repair.")
@click.option("--dry-run", is_flag=True, help="Show what a sync would change now; write nothing.")
@click.option(
    "--confirm-deletes",
    "confirm",
    type=int,
    default=None,
    metavar="CAL",
    help="Let the deletes the safety catch holds for calendar CAL go, and sync it.",
)
@pass_calsync
def sync(
    calsync: CalsyncContext,
    calendar_ids: tuple[int, ...],
    full: bool,
    dry_run: bool,
    confirm: int | None,
) -> None:
    """Sync now: every calendar with sync on, or the ones named."""
    from calsync_server.sync import trust_cli
    from calsync_server.sync.cli import run_sync

    if dry_run:
        sys.exit(trust_cli.run_dry_run(calsync.settings, calendar_ids, full))
    if confirm is not None:
        if trust_cli.confirm_deletes(calsync.settings, confirm):
            sys.exit(run_sync(calsync.settings, (confirm,), True))
        sys.exit(0)
    sys.exit(run_sync(calsync.settings, calendar_ids, full))


@cli.command("explain")
@click.option("--event", "event_id", type=int, default=None, help="calsync's event id.")
@click.option("--calendar", "calendar_id", type=int, default=None, help="Calendar id.")
@click.option("--id", "provider_event_id", default=None, help="The provider's event id.")
@click.option("--search", "title", default=None, help="A piece of the event's title.")
@click.option(
    "--at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]),
    default=None,
    help="An instant the event holds (with its offset: 2025-03-10T09:30+01:00).",
)
@pass_calsync
def explain(calsync: CalsyncContext, /, **question: Any) -> None:
    """Why an event blocks or not in each of your other calendars, and which sync wrote it."""
    from calsync_server.sync.trust_cli import run_explain

    try:
        sys.exit(run_explain(calsync.settings, **question))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--public-url",
    default=None,
    help="Where Google reaches this server (CALSYNC_PUBLIC_URL); unset: polling only.",
)
@pass_calsync
def serve(calsync: CalsyncContext, host: str, port: int, public_url: str | None) -> None:
    """Run the server headless: webhooks, workers, scheduler and the JSON API."""
    from calsync_server.app import create_app
    from calsync_server.runtime import Runtime
    from calsync_server.serving import Server, server_config

    if public_url:
        calsync.flags["public_url"] = public_url
    settings = calsync.settings
    runtime = Runtime(settings)
    app = create_app(settings, runtime=runtime)
    click.echo(f"calsync server at http://{host}:{port}/ (data in {settings.home})")
    if not settings.public_url:
        click.echo("no public URL: push channels are off, calendars are polled")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again so the default
    # handler kills the process (exit status -15). A stop that was asked for is a clean exit:
    # this handler gets that re-raised signal (or one that comes before uvicorn is listening).
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    server = Server(server_config(app, host=host, port=port), runtime.bus.close)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn stopped gracefully, then raised it again (as uvicorn.run)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: it could not start (the port taken, say)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@cli.command("emulator")
@click.option(
    "--provider",
    type=click.Choice(["google", "microsoft"]),
    default="google",
    show_default=True,
    help="Which provider to emulate: Google Calendar or Microsoft Graph (Outlook).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8766,
    show_default=True,
    type=int,
    help="Port to listen on (8765 is left for the calsync server); Microsoft's sign-in is "
    "served over HTTPS on the next port.",
)
@click.option(
    "--scenario",
    type=click.Choice(["empty", "demo"]),
    default="empty",
    show_default=True,
    help="What the emulator starts with.",
)
@click.option("--live", is_flag=True, help="Change something every few seconds (demo).")
def emulator(provider: str, host: str, port: int, scenario: str, live: bool) -> None:
    """Run a provider emulator alone: try calsync without a Google or Microsoft account."""
    # Imported here so `calsync --help` does not pay for Litestar and the emulator.
    import uvicorn

    if provider == "microsoft":
        _microsoft_emulator(host, port, scenario, live)
        return

    from calsync_server.emulators.google.app import create_emulator_app
    from calsync_server.emulators.google.config import EmulatorConfig

    app = create_emulator_app(EmulatorConfig(scenario=scenario, live=live))
    click.echo(f"Google Calendar emulator at http://{host}:{port}/ (scenario {scenario})")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _microsoft_emulator(host: str, port: int, scenario: str, live: bool) -> None:
    from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
    from calsync_server.emulators.microsoft.runner import run_graph_emulator

    config = GraphEmulatorConfig(scenario=scenario, live=live)
    tls_port = port + 1 if port else 0
    with run_graph_emulator(config, host=host, port=port, tls_port=tls_port) as running:
        click.echo(
            f"Microsoft Graph emulator at {running.url}v1.0/ (scenario {scenario})\n"
            f"Sign-in (MSAL authority): {running.tls_url}common\n"
            f"Its TLS certificate's CA: {running.ca_path}\n"
            "Ctrl-C stops it."
        )
        signal.signal(signal.SIGTERM, _exit_cleanly)
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            threading.Event().wait()


cli.add_command(accounts)
cli.add_command(calendars)
cli.add_command(users)
cli.add_command(purge)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="calsync", standalone_mode=False)
    except SettingsError as exc:
        click.echo(f"calsync: bad setting: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
