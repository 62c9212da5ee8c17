"""Follows the server's live stream (server-sent events): coalesces bursts, reconnects by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import msgspec
from httpx_sse import SSEError, aconnect_sse

from shared.schemas import ChannelOut, Status, StreamEvent, SyncLogOut, SyncProgressOut

# Updates arriving within this long of each other reach the screens as one batch.
COALESCE_SECONDS = 0.3
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
# The server sends a keepalive every 15 s: silence much longer than that is a dead connection.
READ_TIMEOUT_SECONDS = 45.0


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"


@dataclass
class StreamBatch:
    """Everything that arrived in one coalescing interval; the latest status and channels win."""

    status: Status | None = None
    channels: list[ChannelOut] | None = None
    finished: list[SyncLogOut] = field(default_factory=list)
    started: list[dict[str, Any]] = field(default_factory=list)
    # The latest progress of each running sync, by calendar id.
    progress: dict[int, SyncProgressOut] = field(default_factory=dict)
    hello: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.status
            or self.channels is not None
            or self.finished
            or self.started
            or self.progress
            or self.hello
        )


class StreamRefused(Exception):
    """The server answered the stream request with an error (a bad token, say)."""


class StreamFollower:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        on_state: Callable[[ConnectionState, str], None],
        on_batch: Callable[[StreamBatch], None],
        coalesce_seconds: float = COALESCE_SECONDS,
    ) -> None:
        self.url = (base_url if base_url.endswith("/") else base_url + "/") + "api/v1/stream"
        self.token = token
        self.on_state = on_state
        self.on_batch = on_batch
        self.coalesce_seconds = coalesce_seconds
        self._pending = StreamBatch()
        self._flush_handle: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Follow the stream until cancelled."""
        retry = FIRST_RETRY_SECONDS
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_SECONDS)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        self.on_state(ConnectionState.CONNECTING, "")
        async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
            while True:
                reason = "the server closed the stream"
                try:
                    async with aconnect_sse(client, "GET", self.url) as source:
                        if source.response.status_code != 200:
                            await source.response.aread()
                            raise StreamRefused(_refusal(source.response))
                        async for event in source.aiter_sse():
                            if self._take(event.data):
                                retry = FIRST_RETRY_SECONDS
                                self.on_state(ConnectionState.LIVE, "")
                except (httpx.HTTPError, SSEError, StreamRefused) as exc:
                    reason = str(exc) or type(exc).__name__
                self._flush()
                self.on_state(ConnectionState.RECONNECTING, reason)
                await asyncio.sleep(retry)
                retry = min(retry * 2, MAX_RETRY_SECONDS)

    def _take(self, data: str) -> bool:
        """Merge one event into the pending batch; True for `hello` (connected)."""
        try:
            event = msgspec.json.decode(data, type=StreamEvent)
        except msgspec.DecodeError:
            return False  # a comment or a future event type's odd data: nothing to show
        pending = self._pending
        try:
            if event.type in ("hello", "counters"):
                pending.status = msgspec.convert(event.data, Status)
            elif event.type == "sync.finished":
                pending.finished.append(msgspec.convert(event.data, SyncLogOut))
            elif event.type == "sync.started":
                pending.started.append(event.data)
            elif event.type == "sync.progress":
                step = msgspec.convert(event.data, SyncProgressOut)
                pending.progress[step.calendar_id] = step
            elif event.type == "channels":
                pending.channels = msgspec.convert(event.data, list[ChannelOut])
        except msgspec.ValidationError:
            return False
        if event.type == "hello":
            pending.hello = True
            self._flush()
            return True
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.coalesce_seconds, self._flush)
        return False

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self._pending = self._pending, StreamBatch()
        if batch:
            self.on_batch(batch)


def _refusal(response: httpx.Response) -> str:
    try:
        error = msgspec.json.decode(response.content, type=dict[str, Any]).get("error")
    except msgspec.DecodeError:
        error = None
    return f"stream refused ({response.status_code}): {error or response.reason_phrase}"
