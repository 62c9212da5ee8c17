"""Clocks for tests that must not depend on the hour they run, and the wall clock they can move.

`SteadyClock` starts at an instant the test fixes and runs at the real pace, so leases, backoffs
and "12 s ago" behave as in production while every date on the calendar is the same on every
run. `MovedWallClock` moves the whole test process's wall clock (`datetime.now`, `time.time`)
to one of the instants in CALSYNC_TEST_WALL_CLOCKS for each `wall_clock` test, ticking from
there, to prove the suite does not care what that instant is (`make test` runs a third of those
tests at each of a few hard instants: Makefile, WALL_CLOCKS; tests/conftest.py).
"""

import os
import time
from datetime import UTC, datetime, timedelta

import time_machine

# Space-separated ISO 8601 instants with their offsets: each `wall_clock` test runs at one of
# them (a stable split by test), so that n instants together cost one run of those tests.
WALL_CLOCKS_ENV = "CALSYNC_TEST_WALL_CLOCKS"


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


def wall_clocks_from_env() -> list[datetime]:
    """The instants in CALSYNC_TEST_WALL_CLOCKS; none when it is not set."""
    instants = [datetime.fromisoformat(v) for v in os.environ.get(WALL_CLOCKS_ENV, "").split()]
    for instant in instants:
        if instant.tzinfo is None:
            raise ValueError(f"{WALL_CLOCKS_ENV}: {instant} needs an offset, e.g. +00:00")
    return instants


class MovedWallClock:
    """The test process's wall clock, moved to one instant at a time or left real.

    Consecutive tests at one instant share one ticking journey (a session's demo built by the
    first of them sees no jump), and a journey taken up again resumes where the last one at
    that instant stopped: each instant's time only moves forward. Subprocesses the tests start
    (`calsync serve`, `calsync demo` in tmux) keep the real clock: `real_clock` tests never
    move."""

    def __init__(self) -> None:
        self._at: datetime | None = None
        self._traveller: time_machine.travel | None = None
        self._started = 0.0
        self._spent: dict[datetime, float] = {}

    def move_to(self, at: datetime | None) -> None:
        """Be at `at` (ticking), or on the real clock for None."""
        if at == self._at:
            return
        self.stop()
        if at is not None:
            self._traveller = time_machine.travel(
                at + timedelta(seconds=self._spent.get(at, 0.0)), tick=True
            )
            self._traveller.start()
            self._at, self._started = at, time.monotonic()

    def stop(self) -> None:
        if self._traveller is not None and self._at is not None:
            self._traveller.stop()
            self._spent[self._at] = self._spent.get(self._at, 0.0) + (
                time.monotonic() - self._started
            )
        self._traveller, self._at = None, None
