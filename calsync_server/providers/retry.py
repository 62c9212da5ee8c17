"""How every provider retries a transient failure: exponential backoff with full jitter,
honouring the provider's Retry-After, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring Retry-After, bounded."""

    attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_seconds)
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header in seconds: a number of seconds, or an HTTP date counted from
    ``now`` (the caller's clock, not the wall's); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, said without a zone
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())
