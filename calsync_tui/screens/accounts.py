"""Accounts: provider, email, state, calendars; add one (`a`) or disconnect one (`d`)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from calsync_tui.dialogs.add_account import AddAccountDialog
from calsync_tui.dialogs.disconnect import DisconnectDialog
from calsync_tui.formatting import ago, plain_row
from calsync_tui.screens.base import CalsyncScreen
from shared.domain import AccountState
from shared.schemas import AccountOut, CalendarOut


class AccountsScreen(CalsyncScreen):
    MODE = "accounts"
    BINDINGS = [
        Binding("a", "add", "Add account"),
        Binding("d", "disconnect", "Disconnect"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[AccountOut] = []
        self.calendar_rows: list[CalendarOut] = []

    def body(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="accounts", cursor_type="row")
        table.border_title = "Accounts"
        yield table
        yield Static(
            "[b]a[/b] add a Google account  [b]d[/b] disconnect the selected account",
            classes="help",
        )

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "provider", "email", "state", "calendars", "syncing", "connected"
        )
        super().on_mount()

    def reload(self) -> None:
        self.load()

    @work(exclusive=True, group="accounts", exit_on_error=False)
    async def load(self) -> None:
        accounts = await self.host.api.accounts()
        calendars = await self.host.api.calendars()
        self.host.remember_calendars(calendars)
        self.show(accounts, calendars)

    def show(self, accounts: list[AccountOut], calendars: list[CalendarOut]) -> None:
        self.rows, self.calendar_rows = accounts, calendars
        table: DataTable[str | Text] = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        now = self.host.now()
        for account in accounts:
            state = (
                Text("● active", style="green")
                if account.state == AccountState.ACTIVE
                else Text("● needs sign-in", style="bold red")
            )
            syncing = sum(1 for c in calendars if c.account_id == account.id and c.sync_enabled)
            table.add_row(
                *plain_row(
                    account.provider.value.capitalize(),
                    account.email,
                    state,
                    str(account.calendars),
                    str(syncing),
                    ago(account.created_at, now),
                ),
                key=str(account.id),
            )
        if accounts:
            table.move_cursor(row=min(max(cursor, 0), len(accounts) - 1))

    def selected(self) -> AccountOut | None:
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def action_add(self) -> None:
        known = {a.id for a in self.rows}
        self.app.push_screen(AddAccountDialog(self.host.api, known), self._added)

    def _added(self, added: bool | None) -> None:
        if added:
            self.notify("account connected: turn sync on for its calendars (3)")
            self.reload()

    def action_disconnect(self) -> None:
        account = self.selected()
        if account is None:
            return
        dialog = DisconnectDialog(account, self.calendar_rows)
        self.app.push_screen(dialog, lambda yes: self._confirmed(account, yes))

    def _confirmed(self, account: AccountOut, yes: bool | None) -> None:
        if yes:
            self.disconnect(account)

    @work(group="disconnect", exit_on_error=False)
    async def disconnect(self, account: AccountOut) -> None:
        # markup=False: a notification reads its message as markup, and this is the server's text.
        self.notify(f"disconnecting {account.email}…", markup=False)
        report = await self.host.api.disconnect(account.id)
        self.notify(
            f"{report.blocks_deleted:,} busy blocks removed, "
            f"{report.channels_stopped} channels stopped"
            + ("" if report.token_revoked else "; the sign-in could not be revoked")
            + "".join(f"; {note}" for note in report.notes),
            title=f"{report.email} disconnected",
            markup=False,
        )
        self.reload()
