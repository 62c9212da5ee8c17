"""Adding a Google account: shows the sign-in link and waits for the account to appear."""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.style import Style
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from calsync_tui.client import ApiError, CalsyncApi

WAIT_SECONDS = 300
POLL_SECONDS = 1.0


class AddAccountDialog(ModalScreen[bool]):
    """Dismissed with True once a new account shows up in the account list."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, api: CalsyncApi, known: set[int]) -> None:
        super().__init__(classes="dialog-screen")
        self.api = api
        self.known = known
        self.auth_url: str | None = None  # once the server started the sign-in

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Add a Google account[/b]", classes="dialog-title")
            yield Static(
                "Asking the server for a sign-in link…", id="add-body", classes="dialog-body"
            )
            yield Static("[dim]esc cancels[/dim]", classes="dialog-body")

    def on_mount(self) -> None:
        self.sign_in()

    @work(exclusive=True, exit_on_error=False)
    async def sign_in(self) -> None:
        body = self.query_one("#add-body", Static)
        try:
            answer = await self.api.authorize_google()
        except ApiError as exc:
            body.update(
                Content.assemble(
                    ("The server cannot start a Google sign-in: ", "red"),
                    str(exc),
                    "\n\nRun ",
                    ("calsync accounts add google", "bold"),
                    " on the server's machine, or try everything offline with ",
                    ("calsync demo", "bold"),
                    ".",
                )
            )
            return
        self.auth_url = answer.auth_url
        # Assembled, not written as markup: a URL's "=" and "&" would break the markup.
        body.update(
            Content.assemble(
                "Open this link in a browser and sign in; calsync picks the account up by "
                "itself:\n\n",
                (answer.auth_url, Style(bold=True, link=answer.auth_url)),
                "\n\nWaiting for the account…",
            )
        )
        self.app.copy_to_clipboard(answer.auth_url)
        loops = int(WAIT_SECONDS / POLL_SECONDS)
        for _ in range(loops):
            accounts = await self.api.accounts()
            if any(a.id not in self.known for a in accounts):
                self.dismiss(True)
                return
            await asyncio.sleep(POLL_SECONDS)
        body.update("No account arrived within five minutes. Press esc and try again.")

    @on(Worker.StateChanged)
    def sign_in_failed(self, event: Worker.StateChanged) -> None:
        """A failure says so in the dialog (a worker's error would otherwise go unseen)."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        message = str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
        self.query_one("#add-body", Static).update(
            Content.assemble(
                ("Lost track of the sign-in: ", "red"), message, "\n\nPress esc and try again."
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(False)
