"""The Graph emulator's settings and its clock: every lifetime, limit and timing knob."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class Clock:
    """The emulator's idea of now: real time plus an offset that tests move forward (over the
    admin API or in process), so expiry and lifetimes are tested without waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        real = datetime.now(UTC)
        self._offset = (start - real) if start is not None else timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


@dataclass(frozen=True)
class GraphEmulatorConfig:
    """Defaults behave like Graph, only faster where waiting would slow tests down."""

    clock: Clock = field(default_factory=Clock)
    # Identity: access tokens last about an hour, refresh tokens 90 days of inactivity.
    access_token_lifetime_s: float = 3600.0
    refresh_token_lifetime_s: float = 90 * 86400.0
    # calendarView delta: page size without `Prefer: odata.maxpagesize`, and how long a
    # delta or skip token stays usable (Graph does not document it; days, in practice).
    delta_page_size: int = 10
    delta_token_lifetime_s: float = 7 * 86400.0
    # Graph's quirks a client must survive; on by default so clients meet them.
    delta_empty_first_page: bool = True
    delta_repeat_items: bool = True
    # Graph sometimes sends a changed series as its `seriesMaster` row instead of the changed
    # occurrences (keeper.sh meets them): clients expand it through `/instances`. Off by
    # default; a test that needs a client to meet it switches it on.
    delta_series_masters: bool = False
    # Outlook's limits per app per mailbox; `throttling=False` switches both off.
    throttling: bool = True
    requests_per_window: int = 10_000
    throttle_window_s: float = 600.0
    concurrent_requests: int = 4
    # How long a repeated transactionId returns the first event instead of a new one.
    transaction_window_s: float = 86400.0
    # Subscriptions: Graph allows at most 4230 minutes for Outlook events.
    subscription_max_minutes: int = 4230
    validation_timeout_s: float = 10.0
    # A notification answered non-2xx or slower than this is retried (Graph: 3 s).
    notification_timeout_s: float = 3.0
    push_delay_s: float = 0.05
    push_retry_base_s: float = 0.1
    push_max_attempts: int = 5
    # `reauthorizationRequired` goes out this long before a subscription expires.
    reauthorization_lead_s: float = 600.0
    lifecycle_poll_s: float = 1.0
    # `empty` starts with no accounts; `demo` seeds Alex Morgan's work mailbox.
    scenario: str = "empty"
    live: bool = False
    live_interval_s: float = 5.0
    # Bounds on expanding a series without an end, so a view never runs away.
    max_occurrences_per_series: int = 1000
    # How an injected fault's delay is waited before the answer goes out: a test gives its
    # own to read the delays asked for, or to hold an answer until it lets it go.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
