"""Adding an account: which provider first, then Google's or Microsoft's sign-in link (this
module) or the CalDAV/iCloud login form (dialogs/caldav_login.py)."""

from __future__ import annotations

import asyncio

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.style import Style
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from calsync_tui.client import ApiError, CalsyncApi

WAIT_SECONDS = 300
POLL_SECONDS = 1.0

# What the choice answers: the provider's sign-in the Accounts screen opens next.
GOOGLE, MICROSOFT, CALDAV, ICLOUD = "google", "microsoft", "caldav", "icloud"
# The providers signed in with a link the server finishes, as the person knows them.
LINK_SIGN_INS = {GOOGLE: "Google", MICROSOFT: "Microsoft"}


def _choice(name: str, what: str, *, disabled: bool = False) -> Content:
    return Content.assemble((f"{name:<10}", "dim" if disabled else "bold"), (what, "dim"))


class AddAccountDialog(ModalScreen[str | None]):
    """Which provider: dismissed with GOOGLE, MICROSOFT, CALDAV or ICLOUD, or None on cancel."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("g", f"choose('{GOOGLE}')", "Google", show=False),
        Binding("m", f"choose('{MICROSOFT}')", "Microsoft", show=False),
        Binding("c", f"choose('{CALDAV}')", "CalDAV", show=False),
        Binding("i", f"choose('{ICLOUD}')", "iCloud", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="add-account"):
            yield Static("[b]Add an account[/b]: which provider?", classes="dialog-title")
            yield OptionList(
                Option(_choice("Google", "sign in with a link in your browser"), id=GOOGLE),
                Option(
                    _choice("Microsoft", "Outlook.com, Microsoft 365: a link in your browser"),
                    id=MICROSOFT,
                ),
                Option(
                    _choice("CalDAV", "Fastmail, Nextcloud, Posteo, mailbox.org, your own"),
                    id=CALDAV,
                ),
                Option(_choice("iCloud", "Apple ID and an app-specific password"), id=ICLOUD),
                id="providers",
                compact=True,
            )
            yield Static(
                "[dim]enter or [b]g[/b] [b]m[/b] [b]c[/b] [b]i[/b] chooses, esc cancels[/dim]",
            )

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#providers")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.action_choose(event.option.id)

    def action_choose(self, provider: str) -> None:
        if provider in (GOOGLE, MICROSOFT, CALDAV, ICLOUD):
            self.dismiss(provider)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SignInLinkDialog(ModalScreen[bool]):
    """Shows the sign-in link of a provider in LINK_SIGN_INS (Google, Microsoft); dismissed
    with True once a new account shows up in the account list."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, api: CalsyncApi, known: set[int], provider: str = GOOGLE) -> None:
        super().__init__(classes="dialog-screen")
        self.api = api
        self.known = known
        self.provider = provider
        self.name_shown = LINK_SIGN_INS[provider]
        self.auth_url: str | None = None  # once the server started the sign-in

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Add a {self.name_shown} account[/b]", classes="dialog-title")
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
            answer = await self.api.authorize(self.provider)
        except ApiError as exc:
            # Google's client is a file `accounts add google` installs; Microsoft's app is a
            # setting of the server.
            remedy: tuple[str | tuple[str, str], ...] = (
                ("Run ", ("calsync accounts add google", "bold"), " on the server's machine")
                if self.provider == GOOGLE
                else ("Set it where the server runs and restart the server",)
            )
            body.update(
                Content.assemble(
                    (f"The server cannot start a {self.name_shown} sign-in: ", "red"),
                    str(exc),
                    "\n\n",
                    *remedy,
                    ", or try everything offline with ",
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
