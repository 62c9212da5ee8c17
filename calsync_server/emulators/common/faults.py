"""What the admin API can make go wrong (injected faults), and the call counts tests read."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    """The next `times` calls of `method` answer `status` (with `reason`), after `delay_ms`;
    or drop the connection without an answer. A status below 400 only adds the delay. With
    `calendar_id`, only calls about that calendar (one calendar failing, the others not); with
    `retry_after_s`, the error says `Retry-After` (Google's 429 and 503 may, Graph's 429)."""

    method: str
    status: int
    reason: str | None
    times: int
    delay_ms: int
    drop_connection: bool
    calendar_id: str | None = None
    retry_after_s: int | None = None


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, calendar_id: str | None = None) -> Fault | None:
        """The fault this call of `method` (about `calendar_id`) gets, if any, using up one of
        its times. `*` matches every method."""
        with self._lock:
            for fault in self._faults:
                if fault.calendar_id is not None and fault.calendar_id != calendar_id:
                    continue
                if fault.method in (method, "*") and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)


class Stats:
    """Counts HTTP requests and API calls by method name; calls inside a batch count each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.calls: dict[str, int] = {}

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def call(self, method: str) -> None:
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            calls = dict(sorted(self.calls.items()))
            return {"requests": self.requests, "calls": calls, "total_calls": sum(calls.values())}

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.calls = {}
