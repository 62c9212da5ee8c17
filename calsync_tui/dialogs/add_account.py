"""Adding a Google account: shows the sign-in link and waits for the account to appear."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

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
                f"[red]The server cannot start a Google sign-in:[/red] {exc}\n\n"
                "Run [b]calsync accounts add google[/b] on the server's machine, "
                "or try everything offline with [b]calsync demo[/b]."
            )
            return
        body.update(
            "Open this link in a browser and sign in; calsync picks the account up by itself:"
            f"\n\n[b][link={answer.auth_url}]{answer.auth_url}[/link][/b]"
            "\n\nWaiting for the account…"
        )
        self.app.copy_to_clipboard(answer.auth_url)
        loops = int(WAIT_SECONDS / POLL_SECONDS)
        for _ in range(loops):
            accounts = await self.api.accounts()
            if any(a.id not in self.known for a in accounts):
                self.dismiss(True)
                return
            await self._pause()
        body.update("No account arrived within five minutes. Press esc and try again.")

    async def _pause(self) -> None:
        import asyncio

        await asyncio.sleep(POLL_SECONDS)

    def action_cancel(self) -> None:
        self.dismiss(False)
