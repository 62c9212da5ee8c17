"""`POST /webhooks/google`: check a push notification, record it, queue a sync, answer at once.

No provider call happens here. The database work runs in the runtime's webhook batcher
(calsync_server/webhook_batch.py), which records the notifications arriving together in one
transaction, so the event loop stays free and a burst costs few commits; the answer waits for
that commit. Stopping an unknown channel at the provider runs after the answer, in the
background.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from calsync_server.api.openapi import errors
from calsync_server.db.engine import is_outage
from calsync_server.runtime import Runtime
from calsync_server.webhook_batch import PushHeaders
from shared.domain import NotificationOutcome

# Google's notifications have an empty body; anything bigger than this is not one of them.
MAX_BODY_BYTES = 1024
STATES = ("sync", "exists", "not_exists")
# What a 503 asks the sender to wait before trying again.
RETRY_AFTER_SECONDS = 5
# Message numbers of up to 18 digits: they fit the database's BIGINT (Google's count from 1).
MESSAGE_NUMBER_DIGITS = 18


@dataclass(frozen=True, slots=True)
class HeaderRule:
    name: str
    longest: int
    required: bool = True


# The X-Goog-* headers of a notification: checked by parse_headers, documented by PushOperation.
HEADERS = {
    rule.name.lower(): rule
    for rule in (
        HeaderRule("X-Goog-Channel-ID", 64),
        HeaderRule("X-Goog-Message-Number", MESSAGE_NUMBER_DIGITS),
        HeaderRule("X-Goog-Resource-ID", 256),
        HeaderRule("X-Goog-Resource-State", 32),
        HeaderRule("X-Goog-Resource-URI", 2048, required=False),
        HeaderRule("X-Goog-Channel-Token", 256, required=False),
    )
}


class BadHeaders(ValueError):
    pass


def parse_headers(headers: Any) -> PushHeaders:
    """The X-Goog-* headers, checked; BadHeaders names the first one that is wrong."""

    def text(key: str) -> str:
        rule = HEADERS[key]
        value = headers.get(key)
        if value is None or value == "":
            if rule.required:
                raise BadHeaders(f"missing header {rule.name}")
            return ""
        if len(value) > rule.longest:
            raise BadHeaders(f"header {rule.name} is longer than {rule.longest} characters")
        return str(value)

    channel_id = text("x-goog-channel-id")
    state = text("x-goog-resource-state")
    if state not in STATES:
        raise BadHeaders(f"header X-Goog-Resource-State must be one of {', '.join(STATES)}")
    number_text = text("x-goog-message-number")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not _decimal(number_text):
        raise BadHeaders("header X-Goog-Message-Number must be a non-negative integer")
    return PushHeaders(
        channel_id=channel_id,
        message_number=int(number_text),
        resource_id=text("x-goog-resource-id"),
        resource_state=state,
        resource_uri=text("x-goog-resource-uri"),
        token=text("x-goog-channel-token"),
    )


@dataclass
class PushOperation(Operation):
    """The document's account of the webhook: the headers it reads, as parse_headers checks
    them (Litestar only documents parameters the handler's signature declares)."""

    def __post_init__(self) -> None:
        patterns = {
            "x-goog-message-number": f"^[0-9]{{1,{MESSAGE_NUMBER_DIGITS}}}$",
            "x-goog-resource-state": f"^({'|'.join(STATES)})$",
        }
        self.parameters = [
            Parameter(
                name=rule.name,
                param_in=ParamType.HEADER,
                required=rule.required,
                schema=Schema(
                    type=OpenAPIType.STRING,
                    min_length=1 if rule.required else None,
                    max_length=rule.longest,
                    pattern=patterns.get(key),
                ),
            )
            for key, rule in HEADERS.items()
        ]


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _answer(
    status: int, content: dict[str, Any], background: BackgroundTask | None = None
) -> Response[Any]:
    return Response(content, status_code=status, background=background)


@post(
    "/webhooks/google",
    status_code=HTTP_200_OK,
    tags=["webhooks"],
    operation_class=PushOperation,
    responses=errors(400, 403, 413, 503),
)
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
    try:
        handled = await runtime.webhooks.submit(push)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # The database is away: the provider retries a 503 later, and the batcher remembered
        # the channel, so its calendar is synced once the database is back (Google's retries
        # can run out first).
        runtime.metrics.notifications.labels("unrecorded").inc()
        return Response(
            {"error": "the database is unavailable; try again later"},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    runtime.metrics.notifications.labels(handled.outcome.value).inc()
    runtime.metrics.webhook_seconds.observe(time.perf_counter() - started)
    if handled.outcome is NotificationOutcome.FORGED:
        return _answer(HTTP_403_FORBIDDEN, {"error": "channel token does not match"})
    background = None
    if handled.stop and runtime.channels.stop_unknown_wanted(push.channel_id):
        background = BackgroundTask(
            asyncio.to_thread,
            runtime.channels.stop_unknown,
            push.channel_id,
            push.resource_id,
            push.resource_uri,
        )
    return _answer(HTTP_200_OK, {"outcome": handled.outcome.value}, background)
