"""A CalDAV or iCloud login as a form: server URL (iCloud's preset), user name, a masked app
password; the server checks it before storing anything, and a refusal is shown in the server's
words with everything typed kept."""

from __future__ import annotations

from urllib.parse import urlsplit

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from calsync_tui.client import ApiError, CalsyncApi
from shared.schemas import CalDAVConnected

# The server's iCloud preset (calsync_server/accounts/caldav_signin.py), repeated here because
# the dashboard imports nothing of the server; tests/tui/test_add_caldav_account.py checks
# that the two agree.
ICLOUD_URL = "https://caldav.icloud.com/"
ICLOUD_NOTE = (
    "Make an app-specific password at account.apple.com (Sign-In and Security): it opens your "
    "whole iCloud account, mail and files too, not only the calendars."
)
CALDAV_NOTE = (
    "Your provider's CalDAV address, and an app password where it offers one; the server "
    "checks the login before storing anything."
)


class CalDAVLoginDialog(ModalScreen[CalDAVConnected | None]):
    """Dismissed with the server's answer once the account is connected, or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "connect", "Connect"),
    ]

    def __init__(self, api: CalsyncApi, *, icloud: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.api = api
        self.icloud = icloud
        self.connecting = False

    def compose(self) -> ComposeResult:
        icloud = self.icloud
        with Vertical(classes="dialog", id="caldav-login"):
            yield Static(
                "[b]Add an iCloud account[/b]" if icloud else "[b]Add a CalDAV account[/b]",
                classes="dialog-title",
            )
            with Horizontal(classes="setting"):
                yield Label("Server", classes="setting-label")
                if icloud:
                    yield Static(f"iCloud  [dim]{ICLOUD_URL}[/dim]", id="preset")
                else:
                    yield Input(placeholder="https://caldav.example.com/", id="url", compact=True)
            with Horizontal(classes="setting"):
                yield Label("Apple ID" if icloud else "User name", classes="setting-label")
                yield Input(
                    placeholder="you@icloud.com" if icloud else "you@example.com",
                    id="username",
                    compact=True,
                )
            with Horizontal(classes="setting"):
                yield Label("App password", classes="setting-label")
                yield Input(password=True, id="password", compact=True)
            yield Static(
                Content.styled(ICLOUD_NOTE if icloud else CALDAV_NOTE, "dim"),
                id="login-note",
                classes="setting-hint",
            )
            status = Static("", id="login-status", classes="setting-hint")
            status.display = False  # only while the server checks the login
            yield status
            error = Static("", id="login-error", classes="setting-error")
            error.display = False
            yield error
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Connect (ctrl+s)", id="connect", variant="primary")

    def on_mount(self) -> None:
        self.fields()[0].focus()

    def fields(self) -> list[Input]:
        """The inputs in the form's order (iCloud has no URL to type)."""
        return list(self.query(Input))

    def url(self) -> str:
        if self.icloud:
            return ICLOUD_URL
        typed = self.query_one("#url", Input).value.strip()
        # "caldav.fastmail.com" means https: the server takes a password only encrypted anyway.
        return typed if not typed or "://" in typed else f"https://{typed}"

    def missing(self) -> Input | None:
        return next((field for field in self.fields() if not field.value.strip()), None)

    @on(Input.Submitted)
    def submitted(self) -> None:
        """Enter moves to the next empty field, and connects once none is."""
        empty = self.missing()
        if empty is None:
            self.action_connect()
        else:
            empty.focus()

    @on(Button.Pressed, "#connect")
    def connect_pressed(self) -> None:
        self.action_connect()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "connect")
        self.dismiss(None)

    def action_connect(self) -> None:
        if self.connecting:
            return
        empty = self.missing()
        if empty is not None:
            label = {"url": "the server URL", "username": "the user name"}.get(
                empty.id or "", "the password"
            )
            if self.icloud and empty.id == "username":
                label = "the Apple ID"
            self.refused(f"fill in {label}", empty)
            return
        if not self.icloud:
            self.query_one("#url", Input).value = self.url()
        self._busy(True)
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        self.connect(self.url(), username, password)

    def _busy(self, connecting: bool) -> None:
        self.connecting = connecting
        button = self.query_one("#connect", Button)
        button.disabled = connecting
        button.label = "Checking…" if connecting else "Connect (ctrl+s)"
        host = urlsplit(self.url()).hostname
        status = self.query_one("#login-status", Static)
        status.update(f"Checking the login with {host}…" if connecting else "")
        status.display = connecting
        if connecting:
            self.query_one("#login-error", Static).display = False

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def connect(self, url: str, username: str, password: str) -> None:
        connected = await self.api.add_caldav(url, username, password)
        self.dismiss(connected)

    @on(Worker.StateChanged)
    def connect_failed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        message = str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
        # A refused password: back to the password; anything else is about the server.
        status = error.status if isinstance(error, ApiError) else None
        field = "#password" if status == 401 or self.icloud else "#url"
        self._busy(False)
        self.refused(message, self.query_one(field, Input), said_by_server=True)

    def refused(self, message: str, field: Input, *, said_by_server: bool = False) -> None:
        shown = self.query_one("#login-error", Static)
        shown.update(
            Content.assemble(
                ("Not connected: ", "bold red"),
                message,  # the server's own sentence, never markup
                (
                    "\nWhat you typed is still here: correct it and connect again, or cancel."
                    if said_by_server
                    else "",
                    "dim",
                ),
            )
        )
        shown.display = True
        field.focus()
