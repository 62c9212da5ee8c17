"""What every screen shares: the header, the footer, live updates and failures shown, not raised."""

from __future__ import annotations

from typing import cast

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from calsync_tui.client import ApiError
from calsync_tui.host import DashboardHost
from calsync_tui.stream import ConnectionState, StreamBatch
from calsync_tui.widgets.header import HeaderBar
from calsync_tui.widgets.sync_progress import SyncProgressLine


class CalsyncScreen(Screen[None]):
    """A screen of the dashboard. Subclasses compose `body()` and load data in `reload()`."""

    MODE = ""

    @property
    def host(self) -> DashboardHost:
        return cast(DashboardHost, self.app)

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.MODE)
        yield from self.body()
        yield SyncProgressLine()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.query_one(HeaderBar).show_state(self.host.connection)
        self.reload()

    def on_screen_resume(self) -> None:
        self.query_one(HeaderBar).show_state(self.host.connection)
        self.progress_changed()
        if self.is_mounted:
            self.reload()

    def reload(self) -> None:
        """Fetch this screen's data (in a worker)."""

    def connection_changed(self, state: ConnectionState) -> None:
        self.query_one(HeaderBar).show_state(state)

    def progress_changed(self) -> None:
        """The running syncs' progress changed (or a sync ended): show where they stand."""
        self.query_one(SyncProgressLine).show(self.host.progress, self.host.calendar_name)

    def live(self, batch: StreamBatch) -> None:
        """A coalesced batch of live updates arrived; by default, fetch again when syncs ended."""
        if batch.finished or batch.hello:
            self.reload()

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            message = (
                str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
            )
            # markup=False: the message is the server's text (or an exception's), not markup.
            self.notify(message, title="Request failed", severity="error", timeout=8, markup=False)
