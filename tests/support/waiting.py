"""Wait on a condition with a deadline, never a bare sleep: fail with what was last seen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
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
