"""Accounts: provider, email, state, calendars; add one (`a`) or disconnect one (`d`)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from calsync_tui.dialogs.add_account import (
    CALDAV,
    ICLOUD,
    LINK_SIGN_INS,
    AddAccountDialog,
    SignInLinkDialog,
)
from calsync_tui.dialogs.caldav_login import CalDAVLoginDialog
from calsync_tui.dialogs.disconnect import DisconnectDialog
from calsync_tui.formatting import ago, plain_row
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.tables import Row, replace_rows
from shared.domain import AccountState, Provider
from shared.schemas import AccountOut, CalDAVConnected, CalendarOut

# Names as their makers spell them ("Caldav" would read as a typo).
PROVIDER_LABEL = {
    Provider.GOOGLE: "Google",
    Provider.MICROSOFT: "Microsoft",
    Provider.CALDAV: "CalDAV",
}


def provider_label(provider: Provider) -> str:
    return PROVIDER_LABEL.get(provider, provider.value.capitalize())


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
            # Within 80 columns: a second line would take a row from the table.
            "[b]a[/b] add Google, Microsoft, CalDAV or iCloud  "
            "[b]d[/b] disconnect the selected account",
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
        now = self.host.now()
        shown: list[Row] = []
        for account in accounts:
            state = (
                Text("● active", style="green")
                if account.state == AccountState.ACTIVE
                else Text("● needs sign-in", style="bold red")
            )
            syncing = sum(1 for c in calendars if c.account_id == account.id and c.sync_enabled)
            cells = plain_row(
                provider_label(account.provider),
                account.email,
                state,
                str(account.calendars),
                str(syncing),
                ago(account.created_at, now),
            )
            shown.append((str(account.id), cells))
        replace_rows(table, shown)

    def selected(self) -> AccountOut | None:
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def action_add(self) -> None:
        self.app.push_screen(AddAccountDialog(), self._chosen)

    def _chosen(self, provider: str | None) -> None:
        api = self.host.api
        if provider in LINK_SIGN_INS:
            known = {a.id for a in self.rows}
            self.app.push_screen(SignInLinkDialog(api, known, provider), self._added)
        elif provider in (CALDAV, ICLOUD):
            dialog = CalDAVLoginDialog(api, icloud=provider == ICLOUD)
            self.app.push_screen(dialog, self._connected)

    def _connected(self, connected: CalDAVConnected | None) -> None:
        if connected is None:
            return
        count = len(connected.calendars)
        self.notify(
            f"{count} calendar{'' if count == 1 else 's'}, sync off: turn it on for the ones "
            "calsync should use (3)",
            title=f"{connected.email} {'reconnected' if connected.reauthorised else 'connected'}",
            markup=False,
        )
        self.reload()

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
