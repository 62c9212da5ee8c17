"""Wait on a condition with a deadline, never a bare sleep: fail with what was last seen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sized
from typing import TypeVar

T = TypeVar("T")

# A deadline only bounds how long a failing test takes to say so: a passing one returns as soon
# as its condition holds. Generous, because `make test` runs two workers on two CPUs (and a
# developer's machine may be busier still): a test must never fail because the machine was.
DEADLINE_S = 30.0


def wait_until(
    probe: Callable[[], T], timeout: float = DEADLINE_S, interval: float = 0.02, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy, and return that; raise AssertionError
    with the last value seen once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: `wait` bounds the time between two probes
    last: T = probe()
    while not last:
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what or probe}: {last!r}"
            )
        pause.wait(interval)
        last = probe()
    return last


def wait_until_empty(
    probe: Callable[[], Sized], timeout: float = DEADLINE_S, interval: float = 0.02, what: str = ""
) -> None:
    """Call `probe` until it returns an empty collection; raise AssertionError with the last
    (non-empty) one seen once `timeout` seconds have passed: what was left says why."""
    last: list[Sized] = []

    def empty() -> bool:
        last[:] = [probe()]
        return len(last[0]) == 0

    try:
        wait_until(empty, timeout, interval, what)
    except AssertionError:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what or probe}; left: {last[0]!r}"
        ) from None
