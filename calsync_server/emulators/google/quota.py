"""Google's optional per-user quota: too many calls in a minute answer its rate-limit error."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from calsync_server.emulators.google import errors


class Quota:
    """Google's per-user limit: at most `per_minute` calls in any sliding `window_s` (Google's
    minute, 60 s; a test shrinks it to meet the quota within seconds). Every call counts, each
    part of a batch too."""

    def __init__(self, per_minute: int | None, window_s: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}
        self.rejected = 0  # calls answered 403 rateLimitExceeded: what a test checks is 0

    def check(self, user: str) -> None:
        if self.per_minute is None:
            return
        now = time.monotonic()
        with self._lock:
            window = self._calls.setdefault(user, deque())
            while window and window[0] <= now - self.window_s:
                window.popleft()
            if len(window) >= self.per_minute:
                self.rejected += 1
                raise errors.rate_limit_exceeded()
            window.append(now)

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return {
                "per_minute": self.per_minute,
                "window_s": self.window_s,
                "rejected": self.rejected,
            }

    def update(self, per_minute: int | None, window_s: float | None) -> dict[str, Any]:
        """Switch the quota on (`per_minute` calls per `window_s`) or off (None); the count of
        calls and of refusals starts again."""
        with self._lock:
            self.per_minute = per_minute
            if window_s is not None:
                self.window_s = window_s
            self._calls.clear()
            self.rejected = 0
        return self.settings()
