"""Clocks for tests that must not depend on the hour they run, and the wall clock they can move.

`SteadyClock` starts at an instant the test fixes and runs at the real pace, so leases, backoffs
and "12 s ago" behave as in production while every date on the calendar is the same on every
run. `travel_from_env` moves the whole test process's wall clock (`datetime.now`, `time.time`)
to the instant in CALSYNC_TEST_WALL_CLOCK, ticking from there, to prove the suite does not care
what that instant is (`make test` runs the `wall_clock` tests so at a few hard instants:
Makefile, WALL_CLOCKS).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import time_machine

WALL_CLOCK_ENV = "CALSYNC_TEST_WALL_CLOCK"
# "i/n": of the wall_clock tests, run only share i of n (a stable split by test), so that n
# instants together cost one run of them (tests/conftest.py; Makefile).
WALL_CLOCK_SHARE_ENV = "CALSYNC_TEST_WALL_CLOCK_SHARE"


class SteadyClock:
    """Starts at `at` and moves as real time does (the monotonic clock, which no wall-clock
    travel touches)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("SteadyClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self._at + timedelta(seconds=time.monotonic() - self._started)


def travel_from_env() -> time_machine.travel | None:
    """Start moving the process's wall clock to the instant in CALSYNC_TEST_WALL_CLOCK (an ISO
    8601 instant with its offset), ticking; None when it is not set. Subprocesses the tests
    start (`calsync serve`, `calsync demo` in tmux) keep the real clock."""
    value = os.environ.get(WALL_CLOCK_ENV, "").strip()
    if not value:
        return None
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"{WALL_CLOCK_ENV}={value!r} needs an offset, e.g. +00:00")
    traveller = time_machine.travel(at, tick=True)
    traveller.start()
    return traveller
