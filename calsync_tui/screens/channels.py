"""Channels: push-channel health per synced calendar, and where polling stands in for push."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from calsync_tui.formatting import ago, one_line, plain_row, until
from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.stream import StreamBatch
from shared.domain import ChannelState, PushState
from shared.schemas import ChannelOut

STATE_STYLE = {ChannelState.ACTIVE: "green", ChannelState.FAILING: "bold red"}


class ChannelsScreen(CalsyncScreen):
    MODE = "channels"

    def body(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="channels", cursor_type="row")
        table.border_title = "Push channels"
        yield table
        yield Static("", id="channels-help", classes="help")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "calendar", "state", "expires", "last notification", "failures", "updates by"
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
        table.clear()
        now = self.host.now()
        for channel in channels:
            state = (
                Text(channel.state.value, style=STATE_STYLE.get(channel.state, "dim"))
                if channel.state is not None
                else Text("none", style="dim")
            )
            if channel.push is PushState.POLLED:
                # Polled by design (a provider without push, no public URL): not a fault.
                mode = Text("polled", style="dim")
            elif channel.polling:
                mode = Text("polling", style="yellow")
            else:
                mode = Text("push", style="green")
            if channel.unannounced_changes:
                mode.append(f" ({channel.unannounced_changes} unannounced)", style="red")
            table.add_row(
                *plain_row(
                    channel.calendar_name,
                    state,
                    until(channel.expires_at, now),
                    ago(channel.last_notification_at, now),
                    str(channel.failures),
                    mode,
                ),
                key=str(channel.calendar_id),
            )
        status = self.host.status
        help_text = Text(
            "Push channels tell calsync about changes within seconds; calendars without a healthy "
            "channel are polled."
        )
        if status is not None and not status.push_enabled:
            help_text = Text(
                "No public URL is set (CALSYNC_PUBLIC_URL), so Google cannot push: "
                "every calendar is polled.",
                style="yellow",
            )
        # Why a channel fails, in the provider's words (a table column would be cut off).
        reasons = [
            Text.assemble((c.calendar_name, "bold"), ": ", (one_line(c.last_error), "red"), "\n")
            for c in channels
            if c.last_error
        ]
        self.query_one("#channels-help", Static).update(Text("").join([*reasons, help_text]))
