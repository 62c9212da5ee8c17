"""`GET /api/v1/stream`: server-sent events of syncs, logs, counters and channel changes.

Facts come from the database (so the stream shows every server process's work); the live bus
only says "look now". Updates are coalesced: a burst of syncs costs one read per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlmodel import Session

from calsync_server.accounts.service import user_for_token
from calsync_server.api import queries
from calsync_server.api.auth import TOKEN_CACHE_SECONDS, bearer_token, provide_user_id
from calsync_server.api.openapi import AUTHENTICATED, errors
from calsync_server.live import CLOSING, LiveUpdate
from calsync_server.runtime import Runtime
from shared.schemas import ChannelOut, Status, SyncLogOut

logger = logging.getLogger("calsync.stream")

# At most one database read per subscriber this often, however many updates arrive.
COALESCE_SECONDS = 0.25
# With nothing happening, look anyway this often (another process may have worked).
IDLE_SECONDS = 2.0
KEEPALIVE_SECONDS = 15.0
# Transient updates passed on as they come (no fact in the database says them).
PASSED_ON = ("sync.started", "sync.progress")


def _message(kind: str, data: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        event=kind, data=msgspec.json.encode({"type": kind, "data": data}).decode()
    )


def _read(
    runtime: Runtime, user_id: int, after_log: int
) -> tuple[list[SyncLogOut], Status, list[ChannelOut]]:
    now = runtime.clock.now()
    with Session(runtime.db) as session:
        return (
            queries.logs_since(session, user_id, after_log),
            queries.status(session, user_id, now, runtime.settings),
            queries.channels(session, user_id, now, runtime.settings),
        )


def _still_theirs(runtime: Runtime, user_id: int, token: str) -> bool:
    with Session(runtime.db) as session:
        user = user_for_token(session, token)
        return user is not None and user.id == user_id


def _last_log_id(runtime: Runtime) -> int:
    with Session(runtime.db) as session:
        return queries.last_log_id(session)


async def stream_events(
    runtime: Runtime, user_id: int, token: str
) -> AsyncIterator[ServerSentEventMessage]:
    """Until the client goes, the server closes, or ``token`` stops being the user's (rotated,
    or the user removed: checked as often as a request's token is, so an open stream ends as
    its next request would be refused)."""
    loop = asyncio.get_running_loop()
    checked = loop.time()
    with runtime.bus.subscription() as updates:
        last_log = await asyncio.to_thread(_last_log_id, runtime)
        _, status, channels = await asyncio.to_thread(_read, runtime, user_id, last_log)
        yield _message("hello", msgspec.to_builtins(status))
        last_status, last_channels = status, channels
        quiet_since = loop.time()
        while True:
            update: LiveUpdate | None = None
            with contextlib.suppress(TimeoutError):
                update = await asyncio.wait_for(updates.get(), IDLE_SECONDS)
            if update is not None and update.type == CLOSING:
                return
            if loop.time() - checked >= TOKEN_CACHE_SECONDS:
                try:
                    theirs = await asyncio.to_thread(_still_theirs, runtime, user_id, token)
                    checked = loop.time()
                except Exception:
                    theirs = True  # the database away a moment: asked again next time
                if not theirs:
                    yield _message("closed", {"reason": "the API token is no longer valid"})
                    return
            if update is not None and update.user_id not in (None, user_id):
                continue
            if update is not None and update.type in PASSED_ON:
                yield _message(update.type, update.data)
            # Let a burst settle, then drain it: one read answers all of it.
            await asyncio.sleep(COALESCE_SECONDS)
            while not updates.empty():
                extra = updates.get_nowait()
                if extra.type == CLOSING:
                    return
                if extra.type in PASSED_ON and extra.user_id in (None, user_id):
                    yield _message(extra.type, extra.data)
            try:
                logs, status, channels = await asyncio.to_thread(_read, runtime, user_id, last_log)
            except Exception:
                # The database away a moment must not end the dashboard's stream: it reads
                # again at the next update or idle interval.
                logger.exception("reading the stream's updates failed; trying again")
                continue
            sent = False
            for log in logs:
                last_log = max(last_log, log.id)
                yield _message("sync.finished", msgspec.to_builtins(log))
                sent = True
            if status != last_status:
                yield _message("counters", msgspec.to_builtins(status))
                last_status, sent = status, True
            if channels != last_channels:
                yield _message("channels", msgspec.to_builtins(channels))
                last_channels, sent = channels, True
            if sent:
                quiet_since = loop.time()
            elif loop.time() - quiet_since > KEEPALIVE_SECONDS:
                yield ServerSentEventMessage(comment="keepalive")
                quiet_since = loop.time()


@get(
    "/api/v1/stream",
    dependencies={"user_id": Provide(provide_user_id)},
    tags=["api"],
    security=[{"BearerToken": []}],
    media_type="text/event-stream",
    responses=errors(*AUTHENTICATED),
)
async def stream(request: Request[Any, Any, Any], user_id: NamedDependency[int]) -> ServerSentEvent:
    """Live updates as server-sent events: hello, sync.started, sync.progress (a running
    sync's phase and counts), sync.finished, counters, channels. Each event's data is JSON
    `{"type", "data"}`."""
    runtime: Runtime = request.app.state.runtime
    return ServerSentEvent(stream_events(runtime, user_id, bearer_token(request)))
