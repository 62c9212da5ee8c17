"""The emulator's settings: token lifetime, push timing, quota, scenario."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EmulatorConfig:
    """Every knob the emulator has; the defaults behave like Google, only faster where waiting
    would slow tests down (push delay, retry backoff)."""

    # Seconds an access token stays valid; Google's is 3600. Tests shorten it to exercise refresh.
    access_token_lifetime_s: float = 3600.0
    # Google sends notifications shortly after a change, never inside the request that made it.
    push_delay_s: float = 0.05
    # First wait before retrying a notification answered 500/502/503/504; doubles each time.
    push_retry_base_s: float = 0.1
    push_max_attempts: int = 5
    push_timeout_s: float = 5.0
    # Requests per minute per user; None switches the quota off (Google's default is 600).
    rate_limit_per_minute: int | None = None
    # How long the quota's minute lasts: 60 s; a test shrinks it (600 calls per 0.6 s) so that
    # meeting the quota takes seconds.
    rate_limit_window_s: float = 60.0
    # `empty` starts with no accounts; `demo` seeds two accounts with a realistic fortnight.
    scenario: str = "empty"
    # In `live` mode the scenario changes something every `live_interval_s` seconds.
    live: bool = False
    live_interval_s: float = 5.0
    # Bounds on expanding a recurrence without timeMax, so a list never runs away.
    max_instances_per_series: int = 1000
    expansion_horizon_days: int = 730
    # How an injected fault's delay is waited before the answer goes out: a test gives its
    # own to read the delays asked for, or to hold an answer until it lets it go.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
