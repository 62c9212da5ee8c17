"""Push notification channels: events.watch, channels.stop, and delivery as Google does it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.config import EmulatorConfig

DEFAULT_TTL_S = 604_800
MAX_TTL_S = 2_592_000
# Statuses Google counts as delivered, and the only ones it retries on.
SUCCESS = frozenset({102, 200, 201, 202, 204})
RETRYABLE = frozenset({500, 502, 503, 504})
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
CHANNEL_ID = re.compile(r"^[A-Za-z0-9\-_+/=]{1,64}$")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# How many stopped channels' ids the admin API can name (the emulator outlives many tests).
STOPPED_KEPT = 10_000


@dataclass
class Channel:
    id: str
    resource_id: str
    calendar_id: str
    owner: str
    address: str
    token: str | None
    expiration_ms: int
    resource_uri: str
    message_number: int = 0
    # Changes seen but not yet announced: several within one delay become one message, and
    # the message number jumps by their count (Google's numbers are not consecutive either).
    pending: int = 0
    delivered: int = 0
    failed: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def expired(self) -> bool:
        return self.expiration_ms <= time.time() * 1000


class PushManager:
    """Registers channels and POSTs notifications to them from the server's event loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}
        # The ids of the channels channels.stop ended, oldest first: a channel gone from the
        # listing was stopped or expired, and only this tells which (the latest STOPPED_KEPT).
        self._stopped: deque[str] = deque(maxlen=STOPPED_KEPT)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self.config.push_timeout_s)

    async def close(self) -> None:
        with self._lock:
            channels = list(self._channels.values())
            self._channels.clear()
        for channel in channels:
            if channel.task is not None:
                channel.task.cancel()
        for channel in channels:
            if channel.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await channel.task
        if self._client is not None:
            await self._client.aclose()
        self._loop = None

    # ------------------------------------------------------------------------------- API

    def watch(
        self, owner: str, calendar_id: str, body: dict[str, Any], root_url: str
    ) -> dict[str, Any]:
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not CHANNEL_ID.match(channel_id):
            raise errors.invalid("Invalid channel id.", "id")
        if body.get("type") not in ("web_hook", "webhook"):
            raise errors.invalid("Invalid value for: type", "type")
        address = body.get("address")
        if not isinstance(address, str) or not address:
            raise errors.required("Missing required field: address")
        parts = urlsplit(address)
        # Google wants HTTPS; loopback HTTP is allowed here so tests can receive on 127.0.0.1.
        if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
            raise errors.GoogleError(
                400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}"
            )
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            raise errors.invalid("Invalid channel token.", "token")
        now_ms = int(time.time() * 1000)
        ttl_s = DEFAULT_TTL_S
        params = body.get("params") or {}
        if isinstance(params, dict) and params.get("ttl") is not None:
            try:
                ttl_s = int(str(params["ttl"]))
            except ValueError:
                raise errors.invalid("Invalid ttl value.", "params.ttl") from None
            if ttl_s <= 0:
                raise errors.invalid("Invalid ttl value.", "params.ttl")
        expiration_ms = now_ms + min(ttl_s, MAX_TTL_S) * 1000
        if body.get("expiration") is not None:
            try:
                expiration_ms = min(expiration_ms, int(str(body["expiration"])))
            except ValueError:
                raise errors.invalid("Invalid expiration.", "expiration") from None
        channel = Channel(
            id=channel_id,
            resource_id=secrets.token_urlsafe(20),
            calendar_id=calendar_id,
            owner=owner,
            address=address,
            token=token,
            expiration_ms=expiration_ms,
            resource_uri=(
                f"{root_url}calendar/v3/calendars/{quote(calendar_id, safe='')}/events?alt=json"
            ),
        )
        with self._lock:
            if channel_id in self._channels:
                raise errors.GoogleError(400, "channelIdNotUnique", "Channel id not unique")
            self._channels[channel_id] = channel
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._launch, channel)
        answer: dict[str, Any] = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(channel.expiration_ms),
        }
        if token is not None:
            answer["token"] = token
        return answer

    def stop(self, body: dict[str, Any]) -> None:
        channel_id = body.get("id")
        with self._lock:
            channel = self._channels.get(str(channel_id))
            if channel is None or channel.resource_id != body.get("resourceId"):
                raise errors.GoogleError(
                    404, "notFound", f"Channel '{channel_id}' not found for project 'calsync'"
                )
            del self._channels[channel.id]
            self._stopped.append(channel.id)
        task = channel.task
        if task is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(task.cancel)

    def on_change(self, calendar_id: str) -> None:
        """A store listener: every change of a calendar wakes its channels."""
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            channels = [c for c in self._channels.values() if c.calendar_id == calendar_id]
        for channel in channels:
            channel.pending += 1
            loop.call_soon_threadsafe(channel.wakeup.set)

    def stopped(self) -> list[str]:
        with self._lock:
            return list(self._stopped)

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": c.id,
                    "resource_id": c.resource_id,
                    "calendar_id": c.calendar_id,
                    "address": c.address,
                    "expiration": c.expiration_ms,
                    "delivered": c.delivered,
                    "failed": c.failed,
                }
                for c in self._channels.values()
                if not c.expired()
            ]

    # -------------------------------------------------------------------------- delivery

    def _launch(self, channel: Channel) -> None:
        with self._lock:
            if self._channels.get(channel.id) is not channel:
                return
        channel.task = asyncio.get_running_loop().create_task(self._run(channel))

    async def _run(self, channel: Channel) -> None:
        delay = self.config.push_delay_s
        try:
            await asyncio.sleep(delay)
            if channel.expired():
                return
            channel.message_number = 1
            await self._deliver(channel, "sync")
            while True:
                remaining = channel.expiration_ms / 1000 - time.time()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(channel.wakeup.wait(), timeout=remaining)
                except TimeoutError:
                    return
                channel.wakeup.clear()
                await asyncio.sleep(delay)
                if channel.expired():
                    return
                count, channel.pending = channel.pending, 0
                channel.message_number += max(1, count)
                await self._deliver(channel, "exists")
        finally:
            if channel.expired():
                with self._lock:
                    if self._channels.get(channel.id) is channel:
                        del self._channels[channel.id]

    async def _deliver(self, channel: Channel, state: str) -> None:
        assert self._client is not None
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Message-Number": str(channel.message_number),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-State": state,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Channel-Expiration": format_datetime(
                datetime.fromtimestamp(channel.expiration_ms / 1000, UTC), usegmt=True
            ),
            "User-Agent": USER_AGENT,
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        wait = self.config.push_retry_base_s
        for attempt in range(self.config.push_max_attempts):
            try:
                response = await self._client.post(channel.address, headers=headers, content=b"")
                status: int | None = response.status_code
            except httpx.HTTPError:
                status = None  # unreachable: as a 503, worth another try
            if status in SUCCESS:
                channel.delivered += 1
                return
            if status is not None and status not in RETRYABLE:
                break
            if attempt + 1 < self.config.push_max_attempts:
                await asyncio.sleep(wait)
                wait *= 2
        channel.failed += 1
