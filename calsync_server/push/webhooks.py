"""The webhooks: `POST /webhooks/{provider}/{key}`, and `POST /webhooks/google` for channels
made before keys were in the path (until they expire).

The provider's pure parser (from the registry) turns a request into notices or a validation
handshake; this code names no provider. No provider call happens here. The database work runs
in the runtime's webhook batcher (push/webhook_batch.py), which records the notices arriving
together in one transaction, so the event loop stays free and a burst costs few commits; the
answer waits for that commit. Stopping an unknown subscription at the provider runs after the
answer, in the background.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

import msgspec
from litestar import Request, post
from litestar.background_tasks import BackgroundTask
from litestar.enums import MediaType, ParamType
from litestar.exceptions import ClientException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from litestar.params import PathParameter
from litestar.response.base import ASGIResponse
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from calsync_server.api.openapi import errors
from calsync_server.db.engine import is_outage
from calsync_server.providers.model import Handshake, PushParser, PushRequest
from calsync_server.providers.registry import GOOGLE, push_parser
from calsync_server.push.webhook_batch import Handled, Incoming
from calsync_server.runtime import Runtime
from shared.domain import NotificationOutcome

if TYPE_CHECKING:
    from litestar.types import HTTPReceiveMessage

# What a 503 asks the sender to wait before trying again.
RETRY_AFTER_SECONDS = 5
# A provider's name, and our key (Google takes channel ids of at most 64 characters).
ProviderName = Annotated[str, PathParameter(min_length=1, max_length=32)]
Key = Annotated[str, PathParameter(min_length=1, max_length=64)]
# The legacy route's provider: channels made before keys were in the path were all Google's.
LEGACY_PROVIDER = GOOGLE
# Numbers the requests, so the notices one request brings are known to belong together.
_requests = itertools.count(1)
# Each provider's parser, made once (the registry imports and builds it on every call); a few
# entries, as the name comes from the path.
_parser_of = functools.lru_cache(maxsize=8)(push_parser)


def _legacy_parser() -> PushParser:
    parser = _parser_of(LEGACY_PROVIDER)
    assert parser is not None
    return parser


@dataclass
class LegacyOperation(Operation):
    """The document's account of the legacy webhook: the headers it reads, as the provider's
    parser checks them (Litestar only documents parameters the handler's signature declares)."""

    def __post_init__(self) -> None:
        self.parameters = [
            Parameter(
                name=header.name,
                param_in=ParamType.HEADER,
                required=header.required,
                schema=Schema(
                    type=OpenAPIType.STRING,
                    min_length=1 if header.required else None,
                    max_length=header.longest,
                    pattern=header.pattern,
                ),
            )
            for header in _legacy_parser().headers
        ]


def _responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The document's answers: a JSON object when received (Litestar says nothing of a route
    answering with its low-level response), and the errors."""
    received = ResponseSpec(
        data_container=Any,
        description="Request fulfilled, document follows",
        generate_examples=False,
    )
    return {HTTP_200_OK: received, **errors(*statuses)}


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _answer(
    status: int,
    content: dict[str, Any],
    background: BackgroundTask | None = None,
    headers: dict[str, str] | None = None,
) -> ASGIResponse:
    # The low-level response, encoded here: a webhook's answer is a small fixed shape, and
    # Litestar's Response (serializer lookup, header merging) was a tenth of its time.
    body = msgspec.json.encode(content)
    if background is None and headers is None:
        return _plain_answer(status, body)
    return ASGIResponse(
        body=body,
        status_code=status,
        media_type=MediaType.JSON,
        background=background,
        headers=headers,
    )


@functools.lru_cache(maxsize=64)
def _plain_answer(status: int, body: bytes) -> ASGIResponse:
    """The same answer for every request that gets it (mostly "enqueued" and "coalesced"):
    a response with no background task keeps no state of its own while it is sent, and
    building one was a tenth of a notification's time on the event loop."""
    return ASGIResponse(body=body, status_code=status, media_type=MediaType.JSON)


def _unavailable(runtime: Runtime) -> ASGIResponse:
    # The database is away: the provider retries a 503 later, and the batcher remembered the
    # subscription, so its calendar is synced once the database is back (the provider's
    # retries can run out first).
    runtime.metrics.notification("unrecorded")
    return _answer(
        HTTP_503_SERVICE_UNAVAILABLE,
        {"error": "the database is unavailable; try again later"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The request's headers (names in lower case, the first of a repeated one): read from the
    ASGI scope at once, as Litestar's Headers took a twentieth of a notification's time."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(list(request.scope["headers"]))
    }


async def _body(
    request: Request[Any, Any, Any], headers: dict[str, str], limit: int
) -> bytes | None:
    """The body, or None when it is longer than `limit` (read no further). Read from the ASGI
    messages at once: Litestar's body() builds the request's Headers again to learn the length
    (a sixth of a Graph notification's time on the event loop)."""
    declared = headers.get("content-length")
    if declared is not None:
        if not _decimal(declared) or int(declared) > limit:
            return None
        if not int(declared):  # Google's notifications
            return b""
    body = b""
    while True:
        message = cast("HTTPReceiveMessage", await request.receive())
        if message["type"] == "http.disconnect":
            raise ClientException("the client disconnected before its body was read")
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


async def receive(
    request: Request[Any, Any, Any], provider: str, key: str | None, parser: PushParser
) -> ASGIResponse:
    """Parse, check, record, enqueue, answer: the same for every provider."""
    # By key: State's attribute access goes through __getattr__ after a failed lookup (1 us).
    runtime: Runtime = request.app.state["runtime"]
    started = time.perf_counter()
    headers = _headers(request)
    body = await _body(request, headers, parser.max_body)
    if body is None:
        return _answer(HTTP_413_REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
    # Notifications come without a query (only Graph's handshake has one).
    query = dict(request.query_params) if request.scope["query_string"] else {}
    incoming = PushRequest(query=query, headers=headers, body=body)
    try:
        parsed = parser.parse(incoming)
    except ValueError as exc:
        runtime.metrics.notification("bad_headers")
        return _answer(HTTP_400_BAD_REQUEST, {"error": str(exc)})
    if isinstance(parsed, Handshake):
        return await _handshake(runtime, provider, key, parsed)
    request_number = next(_requests)
    pushes = [Incoming(provider, notice, key, request_number) for notice in parsed]
    try:
        handled: list[Handled] = await runtime.webhooks.submit_all(pushes)
    except Exception as exc:
        if not is_outage(exc):
            raise
        return _unavailable(runtime)
    for one in handled:
        runtime.metrics.notification(one.outcome)
    runtime.metrics.webhook_seconds.observe(time.perf_counter() - started)
    if handled and all(one.outcome is NotificationOutcome.FORGED for one in handled):
        return _answer(HTTP_403_FORBIDDEN, {"error": "channel token does not match"})
    stops = [
        push
        for push, one in zip(pushes, handled, strict=True)
        if one.stop and runtime.channels.stop_unknown_wanted(push.label)
    ]
    background = (
        BackgroundTask(asyncio.to_thread, runtime.channels.stop_unknown_all, stops)
        if stops
        else None
    )
    # The outcomes are strings (StrEnum): their `value` property cost more than the rest here.
    outcome = handled[0].outcome if len(handled) == 1 else None
    content = {"outcome": outcome} if outcome else {"outcomes": [h.outcome for h in handled]}
    return _answer(parser.accepted_status, content, background)


async def _handshake(
    runtime: Runtime, provider: str, key: str | None, handshake: Handshake
) -> ASGIResponse:
    """A validation request (Graph): the token back as text/plain at once, for a key calsync
    made (a subscription being made is in the table before the provider is asked)."""
    if key is None:
        return _answer(HTTP_400_BAD_REQUEST, {"error": "a handshake needs a subscription key"})
    try:
        known = await asyncio.to_thread(runtime.channels.key_known, provider, key)
    except Exception as exc:
        if not is_outage(exc):
            raise
        return _unavailable(runtime)
    if not known:
        return _answer(HTTP_404_NOT_FOUND, {"error": "no such subscription"})
    return ASGIResponse(body=handshake.token, status_code=HTTP_200_OK, media_type=MediaType.TEXT)


@post(
    "/webhooks/{provider:str}/{key:str}",
    status_code=HTTP_200_OK,
    tags=["webhooks"],
    responses=_responses(400, 403, 404, 413, 503),
)
async def push_webhook(
    request: Request[Any, Any, Any], provider: ProviderName, key: Key
) -> ASGIResponse:
    """Receive a push notification for the subscription with this key (its provider's parser
    reads it: Google's headers, Graph's JSON or validation handshake)."""
    parser = _parser_of(provider)
    if parser is None:
        return _answer(HTTP_404_NOT_FOUND, {"error": f"no push for provider {provider!r}"})
    return await receive(request, provider, key, parser)


@post(
    "/webhooks/google",
    status_code=HTTP_200_OK,
    tags=["webhooks"],
    operation_class=LegacyOperation,
    responses=_responses(400, 403, 413, 503),
)
async def google_webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Receive a Google Calendar push notification for a channel made before keys were in the
    path (headers only; the body is empty)."""
    return await receive(request, LEGACY_PROVIDER, None, _legacy_parser())
