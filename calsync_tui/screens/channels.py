"""Channels: how each synced calendar hears of changes (a Google channel, a Graph subscription
and its lifecycle notices, or polling for CalDAV), and what there needs the user."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from calsync_tui.formatting import ago, one_line, plain_row, until
from calsync_tui.screens.accounts import provider_label
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.stream import StreamBatch
from calsync_tui.tables import Row, replace_rows
from shared.domain import AccountState, ChannelState, Provider, PushState, SubscriptionNotice
from shared.schemas import ChannelOut

STATE_STYLE = {ChannelState.ACTIVE: "green", ChannelState.FAILING: "bold red"}
# What each provider calls what it pushes through (the provider named with it); a provider
# without one is polled.
PUSH_NAME = {Provider.GOOGLE: "Google channel", Provider.MICROSOFT: "Graph subscription"}
# A login ending within this is worth the user's attention (as on the overview).
LOGIN_WARNING = timedelta(days=2)


class ChannelsScreen(CalsyncScreen):
    MODE = "channels"

    def body(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="channels", cursor_type="row")
        table.border_title = "Push channels, subscriptions and polled calendars"
        yield table
        yield Static("", id="channels-help", classes="help")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "calendar", "push", "state", "expires", "last heard", "updates by", "lifecycle notice"
        )
        super().on_mount()

    def reload(self) -> None:
        self.load()

    def live(self, batch: StreamBatch) -> None:
        if batch.channels is not None:
            self.show(batch.channels)
        elif batch.hello:
            self.reload()

    @work(exclusive=True, group="channels", exit_on_error=False)
    async def load(self) -> None:
        self.show(await self.host.api.channels())

    def show(self, channels: list[ChannelOut]) -> None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        now = self.host.now()
        shown: list[Row] = []
        for channel in channels:
            notice = (
                Text(f"{channel.notice.value} {ago(channel.notice_at, now)}", style="yellow")
                if channel.notice is not None
                else Text("-", style="dim")
            )
            cells = plain_row(
                channel.calendar_name,
                _push(channel),
                _state(channel),
                until(channel.expires_at, now),
                ago(channel.last_notification_at, now, never="-"),
                _updates_by(channel),
                notice,
            )
            shown.append((str(channel.calendar_id), cells))
        self.query_one("#channels-help", Static).update(self._help(channels, now))
        replace_rows(table, shown)

    def _help(self, channels: list[ChannelOut], now: datetime) -> Text:
        """What needs the user first (an account's login, a channel that fails), then what
        the screen is about."""
        lines = needs_you(channels, now)
        status = self.host.status
        if status is not None and not status.push_enabled:
            about = Text(
                "No public URL is set (CALSYNC_PUBLIC_URL), so no provider can push: "
                "every calendar is polled.",
                style="yellow",
            )
        else:
            about = Text(
                "Google's channels and Graph's subscriptions tell calsync of changes within "
                "seconds; CalDAV has no push, so its calendars are polled.",
                style="dim",
            )
        return Text("\n").join([*lines, about])


def _push(channel: ChannelOut) -> Text:
    """The provider's push by its name (`Graph subscription`); none for CalDAV."""
    name = PUSH_NAME.get(channel.provider)
    if name is None:
        return Text(f"{provider_label(channel.provider)}: none", style="dim")
    return Text(name)


def _state(channel: ChannelOut) -> Text:
    if channel.state is None:
        # Polled by design (no push, no public URL), or the subscription is not made yet.
        return Text("polled" if channel.push is PushState.POLLED else "pending", style="dim")
    return Text(channel.state.value, style=STATE_STYLE.get(channel.state, "dim"))


def _updates_by(channel: ChannelOut) -> Text:
    if channel.account_state is not AccountState.ACTIVE:
        return Text("needs you", style="bold red")
    if channel.push is PushState.POLLED:
        # Polled by design (a provider without push, no public URL): not a fault.
        mode = Text("polled", style="dim")
    elif channel.polling:
        mode = Text("polling", style="yellow")
    else:
        mode = Text("push", style="green")
    if channel.unannounced_changes:
        mode.append(f" ({channel.unannounced_changes} unannounced)", style="red")
    return mode


def needs_you(channels: list[ChannelOut], now: datetime) -> list[Text]:
    """One line per thing the user must do or know, in the provider's words where it has
    them: an account signed out (once per account), a login about to end, a channel failing."""
    lines: list[Text] = []
    accounts: set[str] = set()
    for channel in channels:
        email = channel.account_email
        if email and email not in accounts:
            if channel.account_state is not AccountState.ACTIVE:
                accounts.add(email)
                if channel.provider is Provider.CALDAV:
                    why = "the server refused the app password: reconnect with a new one (2, a)"
                else:
                    why = "the login expired or was revoked: sign in again (2, a)"
                lines.append(_line(email, f"{why}; its calendars are not synced meanwhile"))
            elif (
                channel.login_expires_at is not None
                and channel.login_expires_at - now < LOGIN_WARNING
            ):
                accounts.add(email)
                when = until(channel.login_expires_at, now)
                lines.append(
                    _line(
                        email,
                        f"the login ends {when} (the Google app is in Testing): publish it, "
                        "or sign in again (2, a)",
                        style="yellow",
                    )
                )
        if channel.last_error:
            # Why a channel fails, in the provider's words (a table column would cut it).
            count = channel.failures
            tries = f" ({count} failure{'' if count == 1 else 's'})" if count else ""
            words = one_line(channel.last_error)
            if channel.notice is SubscriptionNotice.REMOVED and channel.failures:
                # The provider removed it, and making a new one has failed since.
                words = f"removed by {provider_label(channel.provider)}; a new one failed: {words}"
            lines.append(_line(channel.calendar_name + tries, words))
    return lines


def _line(name: str, words: str, style: str = "red") -> Text:
    return Text.assemble((name, "bold"), ": ", (words, style))
