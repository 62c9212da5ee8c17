"""How every provider retries a transient failure: exponential backoff with full jitter,
honouring the provider's Retry-After, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass


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
