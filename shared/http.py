"""HTTP transports for clients of calsync's own API: a kept-alive connection the server closed
as it was reused is retried once on a new one, not reported as the server being gone."""

from __future__ import annotations

import httpx

# RFC 9110 §9.2.2: a request of these methods may be sent again without a second effect.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# uvicorn closes a connection idle for 5 s (timeout_keep_alive). A client keeping it as long
# (httpx's default) races that close: the request goes out as the server's FIN comes in, and
# the answer is "Server disconnected without sending a response". Letting go of it sooner makes
# the race rare; the retry below covers what is left (a server that closed it for another reason).
KEEPALIVE_SECONDS = 2.0
LIMITS = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)


class ReusedConnectionRetry(httpx.HTTPTransport):
    """A transport that sends an idempotent request once more when the server closed the
    connection without answering it."""

    def __init__(self) -> None:
        super().__init__(limits=LIMITS)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.RemoteProtocolError:
            if request.method not in IDEMPOTENT_METHODS:
                raise
            return super().handle_request(request)


class AsyncReusedConnectionRetry(httpx.AsyncHTTPTransport):
    """`ReusedConnectionRetry` for an `httpx.AsyncClient` (the dashboard's)."""

    def __init__(self) -> None:
        super().__init__(limits=LIMITS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.RemoteProtocolError:
            if request.method not in IDEMPOTENT_METHODS:
                raise
            return await super().handle_async_request(request)
