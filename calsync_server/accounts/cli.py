"""`calsync accounts`: add a Google, Microsoft, CalDAV or iCloud account, list them, remove one,
all over the JSON API of a running server (`--server`) or of one started in this process for
the length of the command."""

from __future__ import annotations

import os
import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx

if TYPE_CHECKING:
    from calsync_server.cli import CalsyncContext

SERVER_ENV = "CALSYNC_SERVER_URL"
# The sign-in itself expires after ten minutes; waiting longer would be waiting for nothing.
DEFAULT_WAIT_SECONDS = 600.0
POLL_SECONDS = 1.0


def _server_options(command: Any) -> Any:
    command = click.option(
        "--token",
        default=None,
        help="API token for --server (default: CALSYNC_API_TOKEN, or the one in CALSYNC_HOME).",
    )(command)
    return click.option(
        "--server",
        envvar=SERVER_ENV,
        default=None,
        help=f"URL of a running calsync server ({SERVER_ENV}); default: start one in-process.",
    )(command)


class Api:
    """The few API calls these commands make; HTTP failures become one-line errors."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the calsync server at {self.client.base_url}: {exc}"
            ) from None
        if answer.status_code >= 400:
            try:
                message = answer.json().get("error") or answer.text
            except ValueError:
                message = answer.text
            raise click.ClickException(f"the server answered {answer.status_code}: {message}")
        return answer.json() if answer.content else None

    def accounts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/api/v1/accounts")
        return found

    def calendars(self, account_id: int) -> list[dict[str, Any]]:
        every: list[dict[str, Any]] = self.call("GET", "/api/v1/calendars")
        return [c for c in every if c["account_id"] == account_id]


def _stored_token(home: Path) -> str | None:
    from calsync_server.accounts.service import TOKEN_FILE

    try:
        return (home / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


@contextmanager
def _connect(calsync: CalsyncContext, server: str | None, token: str | None) -> Iterator[Api]:
    settings = calsync.settings
    if server:
        token = token or settings.api_token or _stored_token(settings.home)
        if not token:
            raise click.UsageError("--server needs --token (or CALSYNC_API_TOKEN)")
        base = server if server.endswith("/") else server + "/"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            yield Api(client)
        return
    # Imported here: `calsync --help` should not pay for Litestar.
    import msgspec

    from calsync_server.app import create_app
    from calsync_server.runtime import Runtime
    from calsync_server.serving import serve_in_thread

    # Google's redirect must come back to this process, not to a public URL served elsewhere;
    # and syncs are left to the real server (no workers here: queued work waits for it).
    local = msgspec.structs.replace(settings, public_url=None)
    runtime = Runtime(local, background=False)
    app = create_app(local, runtime=runtime)
    with serve_in_thread(app, ready_path="healthz") as served:
        headers = {"Authorization": f"Bearer {token or runtime.default_token}"}
        with httpx.Client(base_url=served.url, headers=headers, timeout=60) as client:
            yield Api(client)


@click.group("accounts")
def accounts() -> None:
    """Accounts: add a Google, Microsoft, CalDAV or iCloud account, list them, remove one."""


def _fingerprint(account: dict[str, Any]) -> tuple[Any, ...]:
    # A sign-in renews authorized_at even where the access token's end is not known.
    return (account["state"], account.get("token_expires_at"), account.get("authorized_at"))


def _show_calendars(api: Api, account: dict[str, Any]) -> None:
    calendars = api.calendars(account["id"])
    count = len(calendars)
    click.echo(f"connected {account['email']} (account {account['id']}): {count} calendars")
    for calendar in calendars:
        notes = ["sync on" if calendar["sync_enabled"] else "sync off"]
        if calendar["read_only"]:
            notes.append("read-only: source only")
        click.echo(f"  {calendar['id']:>5}  {calendar['name']}  ({', '.join(notes)})")
    if not any(c["sync_enabled"] for c in calendars):
        click.echo("New calendars start with sync off: turn on the ones to keep in step.")


@accounts.group("add")
def add() -> None:
    """Connect an account: `google` or `microsoft` (sign in in the browser), `caldav` (any
    CalDAV server: Fastmail, Nextcloud, a self-hosted one) or `icloud`."""


def _sign_in_options(command: Any) -> Any:
    command = click.option(
        "--wait",
        "wait_seconds",
        type=click.FloatRange(min=1),
        default=DEFAULT_WAIT_SECONDS,
        show_default=True,
        help="Seconds to wait for the sign-in to finish.",
    )(command)
    return click.option(
        "--no-browser", is_flag=True, help="Print the sign-in link instead of opening it."
    )(command)


@add.command("google")
@click.option(
    "--client-secrets",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Your Google OAuth client (client_secret.json); kept in CALSYNC_HOME from then on.",
)
@click.option("--login-hint", default=None, help="Email of the Google account to sign in as.")
@_sign_in_options
@_server_options
@click.pass_obj
def add_google(
    calsync: CalsyncContext,
    client_secrets: Path | None,
    login_hint: str | None,
    no_browser: bool,
    wait_seconds: float,
    server: str | None,
    token: str | None,
) -> None:
    """Connect a Google account: sign in in the browser, then see its calendars."""
    if client_secrets is not None:
        if server:
            raise click.UsageError(
                "--client-secrets is kept by the server: run this command on the server's "
                "machine without --server, or copy the file to its CALSYNC_HOME"
            )
        from calsync_server.accounts.oauth_signin import sign_in_of
        from calsync_server.providers.signin import InstallsClient

        google = sign_in_of(calsync.settings, "google")
        assert isinstance(google, InstallsClient)
        try:
            client_id = google.install_client(client_secrets)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"OAuth client {client_id} saved as {calsync.settings.home / google.client_file}"
        )
    _sign_in(calsync, "google", "Google", login_hint, no_browser, wait_seconds, server, token)


@add.command("microsoft")
@click.option(
    "--login-hint",
    default=None,
    help="Address of the Microsoft account to sign in as (work, school or personal).",
)
@_sign_in_options
@_server_options
@click.pass_obj
def add_microsoft(
    calsync: CalsyncContext,
    login_hint: str | None,
    no_browser: bool,
    wait_seconds: float,
    server: str | None,
    token: str | None,
) -> None:
    """Connect a Microsoft 365 or Outlook.com account: sign in in the browser, then see its
    calendars. The server needs your Entra app's id (CALSYNC_MICROSOFT_CLIENT_ID; README,
    'Microsoft 365 / Outlook.com')."""
    _sign_in(calsync, "microsoft", "Microsoft", login_hint, no_browser, wait_seconds, server, token)


def _sign_in(
    calsync: CalsyncContext,
    provider: str,
    name: str,
    login_hint: str | None,
    no_browser: bool,
    wait_seconds: float,
    server: str | None,
    token: str | None,
) -> None:
    """Start the provider's sign-in on the server, hand the link to the browser and wait for
    the account to appear (or come back signed in afresh)."""
    with _connect(calsync, server, token) as api:
        before = {a["id"]: _fingerprint(a) for a in api.accounts()}
        body = {"login_hint": login_hint} if login_hint else {}
        started = api.call("POST", f"/api/v1/accounts/{provider}/authorize", json=body)
        url = started["auth_url"]
        opened = False
        if not no_browser:
            try:
                opened = webbrowser.open(url)
            except webbrowser.Error:
                opened = False
        if opened:
            click.echo(f"Sign in with {name} in the browser window that opened. If none did, open:")
        else:
            click.echo(f"Open this link in a browser and sign in with {name}:")
        click.echo(url)
        click.echo("Waiting for the sign-in to finish (Ctrl-C to give up)...")
        account = _wait_for_account(api, before, provider, login_hint, wait_seconds)
        _show_calendars(api, account)


PASSWORD_ENV = "CALSYNC_CALDAV_PASSWORD"


def _password(password_file: Path | None, username: str) -> str:
    """From the file, else the environment, else asked without echo: never a flag's value
    (it would stay in the shell's history and in the process list)."""
    if password_file is not None:
        try:
            text = password_file.read_text()
        except OSError as exc:
            raise click.ClickException(f"{password_file}: cannot be read: {exc.strerror}") from None
        password = text.splitlines()[0] if text.strip() else ""
        if not password:
            raise click.ClickException(f"{password_file}: holds no password on its first line")
        return password
    password = os.environ.get(PASSWORD_ENV, "")
    if password:
        return password
    prompted: str = click.prompt(f"Password for {username}", hide_input=True)
    return prompted


def _connect_caldav(
    calsync: CalsyncContext,
    url: str,
    username: str,
    password_file: Path | None,
    server: str | None,
    token: str | None,
) -> None:
    password = _password(password_file, username)
    with _connect(calsync, server, token) as api:
        body = {"url": url, "username": username, "password": password}
        connected = api.call("POST", "/api/v1/accounts/caldav", json=body)
        account = next(a for a in api.accounts() if a["id"] == connected["account_id"])
        if connected["reauthorised"]:
            click.echo(f"the login of {account['email']} is renewed")
        _show_calendars(api, account)


def _caldav_options(command: Any) -> Any:
    command = click.option(
        "--password-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help=f"Read the password from the file's first line (else {PASSWORD_ENV}, else asked "
        "without echo; never a flag: it would stay in the shell's history).",
    )(command)
    return click.option("--username", required=True, help="The user name (often an email).")(
        command
    )


@add.command("caldav")
@click.option("--url", default=None, help="The CalDAV server (https://...), or use --icloud.")
@click.option("--icloud", is_flag=True, help="iCloud's server, with an app-specific password.")
@_caldav_options
@_server_options
@click.pass_obj
def add_caldav(
    calsync: CalsyncContext,
    url: str | None,
    icloud: bool,
    username: str,
    password_file: Path | None,
    server: str | None,
    token: str | None,
) -> None:
    """Connect a CalDAV account (Fastmail, Nextcloud, mailbox.org, a self-hosted server).
    Its calendars are polled: CalDAV has no push for other apps."""
    from calsync_server.accounts.caldav_signin import ICLOUD_PASSWORD_NOTE, ICLOUD_URL

    if icloud:
        if url is not None:
            raise click.UsageError("--icloud sets the URL: give --url or --icloud, not both")
        url = ICLOUD_URL
        click.echo(ICLOUD_PASSWORD_NOTE)
    if url is None:
        raise click.UsageError("give the server's address with --url (or --icloud)")
    _connect_caldav(calsync, url, username, password_file, server, token)


@add.command("icloud")
@_caldav_options
@_server_options
@click.pass_obj
def add_icloud(
    calsync: CalsyncContext,
    username: str,
    password_file: Path | None,
    server: str | None,
    token: str | None,
) -> None:
    """Connect an iCloud calendar account: the Apple ID and an app-specific password."""
    from calsync_server.accounts.caldav_signin import ICLOUD_PASSWORD_NOTE, ICLOUD_URL

    click.echo(ICLOUD_PASSWORD_NOTE)
    _connect_caldav(calsync, ICLOUD_URL, username, password_file, server, token)


def _wait_for_account(
    api: Api,
    before: dict[int, tuple[Any, ...]],
    provider: str,
    login_hint: str | None,
    wait_seconds: float,
) -> dict[str, Any]:
    """The provider's account that appeared, or came back with a fresh login, since `before`."""
    deadline = time.monotonic() + wait_seconds
    pause = threading.Event()  # never set: a bounded wait between two looks
    while True:
        for account in api.accounts():
            if account["provider"] != provider:
                continue
            if login_hint and account["email"].lower() != login_hint.lower():
                continue
            fresh = before.get(account["id"]) != _fingerprint(account)
            if account["state"] == "active" and fresh:
                return account
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"no account was connected within {wait_seconds:g} s: run the command again"
            )
        pause.wait(POLL_SECONDS)


@accounts.command("list")
@_server_options
@click.pass_obj
def list_accounts(calsync: CalsyncContext, server: str | None, token: str | None) -> None:
    """The connected accounts, with their state and number of calendars."""
    with _connect(calsync, server, token) as api:
        found = api.accounts()
    if not found:
        click.echo(
            "no accounts yet: add one with `calsync accounts add google` (or `microsoft`, "
            "`caldav`, `icloud`)"
        )
        return
    width = max(len(a["email"]) for a in found)
    click.echo(f"{'ID':>5}  {'EMAIL':<{width}}  {'STATE':<12}  CALENDARS")
    for account in found:
        click.echo(
            f"{account['id']:>5}  {account['email']:<{width}}  {account['state']:<12}  "
            f"{account['calendars']}"
        )
    if any(a["state"] == "needs_reauth" for a in found):
        click.echo(
            "An account that needs re-authorisation syncs again after "
            "`calsync accounts add google --login-hint EMAIL` (or `add microsoft`; CalDAV: "
            "`calsync accounts add caldav` again, with the new password)."
        )


@accounts.command("remove")
@click.argument("account_id", type=click.IntRange(min=1))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_server_options
@click.pass_obj
def remove(
    calsync: CalsyncContext, account_id: int, yes: bool, server: str | None, token: str | None
) -> None:
    """Disconnect an account: its busy blocks are removed everywhere, its token revoked and
    its local data deleted."""
    with _connect(calsync, server, token) as api:
        account = next((a for a in api.accounts() if a["id"] == account_id), None)
        if account is None:
            raise click.ClickException(f"no account {account_id} (see `calsync accounts list`)")
        if not yes:
            click.confirm(
                f"Disconnect {account['email']}? Its busy blocks are removed from all your "
                "calendars and its calendars are cleaned of calsync's blocks.",
                abort=True,
            )
        report = api.call("DELETE", f"/api/v1/accounts/{account_id}")
    click.echo(
        f"disconnected {report['email']}: {report['blocks_deleted']} busy blocks removed, "
        f"{report['channels_stopped']} push channels stopped, token "
        f"{'revoked' if report['token_revoked'] else 'not revoked'}"
    )
    for note in report.get("notes", []):
        click.echo(f"  note: {note}")
