"""In-process fan-out of live updates to the stream's subscribers, safe to publish from threads.

Only what is transient travels here (a sync started, something changed: look again). What the
stream sends as facts (logs, counters, channels) it reads from the database, so a subscriber of
one server process also sees the work of every other process sharing the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# A subscriber that stops reading loses the oldest updates, never blocks the publisher.
QUEUE_LIMIT = 256
# The last update a subscriber gets: the server is stopping, end the stream.
CLOSING = "server.closing"


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    user_id: int | None  # None: for every user (a change whose owner is unknown)
    type: str
    data: dict[str, Any] = field(default_factory=dict)


class LiveBus:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[LiveUpdate]] = set()
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, update: LiveUpdate) -> None:
        """From any thread; a no-op before the server's loop is bound."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._deliver, update)

    def _deliver(self, update: LiveUpdate) -> None:
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(update)

    def close(self) -> None:
        """On the loop, as the server starts to stop: every subscriber, and any that comes
        later, gets CLOSING. Streams never end by themselves; this lets them end in time."""
        self._closed = True
        self._deliver(LiveUpdate(None, CLOSING))

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[LiveUpdate]]:
        queue: asyncio.Queue[LiveUpdate] = asyncio.Queue(QUEUE_LIMIT)
        if self._closed:
            queue.put_nowait(LiveUpdate(None, CLOSING))
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)
