"""Google's optional per-user quota: too many calls in a minute answer its rate-limit error."""

from __future__ import annotations

import threading
import time
from collections import deque

from calsync_server.emulators.google import errors


class Quota:
    """Google's per-user limit: at most `per_minute` calls in any sliding minute."""

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}

    def check(self, user: str) -> None:
        if self.per_minute is None:
            return
        now = time.monotonic()
        with self._lock:
            window = self._calls.setdefault(user, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.per_minute:
                raise errors.rate_limit_exceeded()
            window.append(now)
