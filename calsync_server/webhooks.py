"""`POST /webhooks/google`: check a push notification, record it, queue a sync, answer at once.

No provider call happens here. The database work runs in a thread so the event loop stays free;
stopping an unknown channel at the provider runs after the answer, in the background.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from litestar import Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
)
from sqlmodel import Session, col, select

from calsync_server.db.models import Notification as NotificationRow
from calsync_server.db.models import PushChannel
from calsync_server.runtime import Runtime
from shared.domain import ChannelState, NotificationOutcome, SyncKind

# Google's notifications have an empty body; anything bigger than this is not one of them.
MAX_BODY_BYTES = 1024
STATES = ("sync", "exists", "not_exists")
# A notification joining a waiting sync delays it until the notifications pause this long: a
# burst becomes one sync after it. The first notification is never delayed.
DEBOUNCE_SECONDS = 0.3


@dataclass(frozen=True, slots=True)
class PushHeaders:
    channel_id: str
    message_number: int
    resource_id: str
    resource_state: str
    resource_uri: str
    token: str


class BadHeaders(ValueError):
    pass


def parse_headers(headers: Any) -> PushHeaders:
    """The X-Goog-* headers, checked; BadHeaders names the first one that is wrong."""

    def text(name: str, limit: int, *, required: bool = True) -> str:
        value = headers.get(name)
        if value is None or value == "":
            if required:
                raise BadHeaders(f"missing header {name}")
            return ""
        if len(value) > limit:
            raise BadHeaders(f"header {name} is longer than {limit} characters")
        return str(value)

    channel_id = text("x-goog-channel-id", 64)
    state = text("x-goog-resource-state", 32)
    if state not in STATES:
        raise BadHeaders(f"header X-Goog-Resource-State must be one of {', '.join(STATES)}")
    number_text = text("x-goog-message-number", 20)
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not _decimal(number_text) or int(number_text) >= 2**63:
        raise BadHeaders("header X-Goog-Message-Number must be a non-negative integer")
    return PushHeaders(
        channel_id=channel_id,
        message_number=int(number_text),
        resource_id=text("x-goog-resource-id", 256),
        resource_state=state,
        resource_uri=text("x-goog-resource-uri", 2048, required=False),
        token=text("x-goog-channel-token", 256, required=False),
    )


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class Handled:
    outcome: NotificationOutcome
    # A channel to stop at the provider after answering (unknown or stopped).
    stop: bool = False


def _record(
    session: Session,
    push: PushHeaders,
    calendar_id: int | None,
    outcome: NotificationOutcome,
    now: datetime,
) -> None:
    session.add(
        NotificationRow(
            channel_id=push.channel_id,
            calendar_id=calendar_id,
            message_number=push.message_number,
            resource_state=push.resource_state,
            outcome=outcome,
            received_at=now,
        )
    )
    session.commit()


def handle_notification(runtime: Runtime, push: PushHeaders) -> Handled:
    """Blocking: record the notification and queue (or coalesce) the calendar's sync."""
    now = runtime.clock.now()
    with Session(runtime.db) as session:
        channel = session.exec(
            select(PushChannel).where(PushChannel.channel_id == push.channel_id)
        ).first()
        calendar_id = channel.calendar_id if channel else None

        def record(outcome: NotificationOutcome) -> Handled:
            _record(session, push, calendar_id, outcome, now)
            return Handled(outcome, stop=outcome is NotificationOutcome.UNKNOWN_CHANNEL)

        if channel is None or channel.state == ChannelState.STOPPED:
            return record(NotificationOutcome.UNKNOWN_CHANNEL)
        # Compared in constant time: the token is the only proof the sender is the provider.
        if not hmac.compare_digest(push.token.encode(), channel.token.encode()) or (
            channel.resource_id is not None and channel.resource_id != push.resource_id
        ):
            return record(NotificationOutcome.FORGED)
        # Atomic: of two deliveries of one message number, exactly one gets past this.
        fresh = session.execute(
            sa.update(PushChannel)
            .where(
                col(PushChannel.id) == channel.id,
                sa.or_(
                    col(PushChannel.last_message_number).is_(None),
                    col(PushChannel.last_message_number) < push.message_number,
                ),
            )
            .values(
                last_message_number=push.message_number,
                last_notification_at=now,
                failures=0,
            )
        )
        if fresh.rowcount != 1:  # type: ignore[attr-defined]
            return record(NotificationOutcome.DUPLICATE)
        if push.resource_state == "sync":
            return record(NotificationOutcome.SYNC_MESSAGE)
        session.commit()
    assert calendar_id is not None
    enqueued = runtime.enqueue(calendar_id, SyncKind.WEBHOOK, debounce=DEBOUNCE_SECONDS)
    with Session(runtime.db) as session:
        outcome = (
            NotificationOutcome.COALESCED if enqueued.coalesced else NotificationOutcome.ENQUEUED
        )
        _record(session, push, calendar_id, outcome, now)
    return Handled(outcome)


def _answer(
    status: int, content: dict[str, Any], background: BackgroundTask | None = None
) -> Response[Any]:
    return Response(content, status_code=status, background=background)


@post("/webhooks/google", status_code=HTTP_200_OK, include_in_schema=True, tags=["webhooks"])
async def google_webhook(request: Request[Any, Any, Any]) -> Response[Any]:
    """Receive a Google Calendar push notification (headers only; the body is empty)."""
    runtime: Runtime = request.app.state.runtime
    started = time.perf_counter()
    declared = request.headers.get("content-length")
    if declared is not None and (not _decimal(declared) or int(declared) > MAX_BODY_BYTES):
        return _answer(HTTP_413_REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _answer(HTTP_413_REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
    try:
        push = parse_headers(request.headers)
    except BadHeaders as exc:
        runtime.metrics.notifications.labels("bad_headers").inc()
        return _answer(HTTP_400_BAD_REQUEST, {"error": str(exc)})
    handled = await asyncio.to_thread(handle_notification, runtime, push)
    runtime.metrics.notifications.labels(handled.outcome.value).inc()
    runtime.metrics.webhook_seconds.observe(time.perf_counter() - started)
    if handled.outcome is NotificationOutcome.FORGED:
        return _answer(HTTP_403_FORBIDDEN, {"error": "channel token does not match"})
    background = None
    if handled.stop:
        background = BackgroundTask(
            asyncio.to_thread,
            runtime.channels.stop_unknown,
            push.channel_id,
            push.resource_id,
            push.resource_uri,
        )
    return _answer(HTTP_200_OK, {"outcome": handled.outcome.value}, background)
