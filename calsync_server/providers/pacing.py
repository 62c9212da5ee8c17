"""Quota pacing: calsync keeps under each provider's rate limit by itself (Google's calls per
user per minute, Graph's per mailbox per 10 minutes) instead of learning it from 403/429s.

A provider counts a call when it arrives, at some moment between calsync sending it and the
answer coming back. So a call here takes its place in the window when it is sent and keeps it
until a whole window after its answer: then no window of the provider's, wherever it falls,
can hold more calls than the quota allows, whatever the network's delays.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `calls` in any `seconds` (a sliding window)."""

    calls: int
    seconds: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.seconds <= 0:
            raise ValueError(f"a quota needs calls >= 1 and seconds > 0, not {self}")


class Pacer:
    """One user's (or mailbox's) quota, shared by every thread that calls for it."""

    def __init__(self, quota: Quota, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.quota = quota
        self.clock = clock
        self._changed = threading.Condition()
        # Answered calls still in the window: (when the answer came, how many calls).
        self._answered: deque[tuple[float, int]] = deque()
        self._used = 0  # calls in flight plus those in `_answered`
        self.waited_s = 0.0  # how long callers were held back, for benchmarks and logs

    def _expire(self, now: float) -> None:
        horizon = now - self.quota.seconds
        while self._answered and self._answered[0][0] <= horizon:
            self._used -= self._answered.popleft()[1]

    @contextmanager
    def take(self, calls: int = 1) -> Iterator[None]:
        """Hold the caller until `calls` more fit in the window, then count them while the
        block runs (the request) and for a window after it."""
        # A batch larger than the whole quota waits for an empty window, then goes.
        calls = max(1, min(calls, self.quota.calls))
        with self._changed:
            began = self.clock()
            while True:
                now = self.clock()
                self._expire(now)
                if self._used + calls <= self.quota.calls:
                    break
                # Until the oldest answered calls leave the window, or a call in flight is
                # answered (then its place is dated and the wait known).
                wait = self._answered[0][0] + self.quota.seconds - now if self._answered else None
                self._changed.wait(wait)
            self._used += calls
            self.waited_s += self.clock() - began
        try:
            yield
        finally:
            with self._changed:
                self._answered.append((self.clock(), calls))
                self._changed.notify_all()


_pacers_lock = threading.Lock()
_pacers: dict[tuple[str, Quota], Pacer] = {}


def pacer(key: str, quota: Quota) -> Pacer:
    """The process's one pacer of `key` (a provider's user or mailbox): every provider object
    of one account shares it, as the provider counts the account's calls together."""
    with _pacers_lock:
        found = _pacers.get((key, quota))
        if found is None:
            found = _pacers[(key, quota)] = Pacer(quota)
        return found
