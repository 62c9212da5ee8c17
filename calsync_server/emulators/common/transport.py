"""The HTTP side every emulator shares: a Litestar app that can drop a connection, requests
read from the raw path, JSON and form bodies, and the admin routes for call counts and faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qsl

from litestar import Litestar, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from calsync_server.emulators.common import admin
from calsync_server.emulators.common.api import ApiRequest, ApiResponse, SignInAnswer
from calsync_server.emulators.common.faults import Faults, Stats

AnyRequest = Request[Any, Any, State]
TRANSPORT_KEY = "calsync.emulator.transport"


class EmulatorApp(Litestar):
    """A Litestar app that can drop a connection on request: it remembers the server's
    transport for each request (uvicorn's send is a method of an object holding it). It holds
    the emulator's call counts and fault rules for the admin routes, and how an injected
    fault's delay is waited (its config's `sleep`: asyncio.sleep, or a test's own, which sees
    the delays asked for or holds an answer until the test lets it go)."""

    stats: Stats
    faults: Faults
    sleep: Callable[[float], Awaitable[None]]

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        raw = cast(dict[str, Any], scope)
        if raw.get("type") == "http":
            raw[TRANSPORT_KEY] = getattr(getattr(send, "__self__", None), "transport", None)
        await super().__call__(scope, receive, send)


def root_url(request: AnyRequest) -> str:
    host = request.headers.get("host") or "127.0.0.1"
    return f"{request.url.scheme}://{host}/"


async def api_request(request: AnyRequest) -> ApiRequest:
    raw_path = cast(dict[str, Any], request.scope).get("raw_path") or request.url.path.encode()
    path = bytes(raw_path).decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return ApiRequest(
        method=request.method,
        path=path,
        query=parse_qsl(query, keep_blank_values=True),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
        root_url=root_url(request),
    )


async def to_response(request: AnyRequest, response: ApiResponse) -> Response[bytes]:
    if response.delay_s > 0:
        await cast(EmulatorApp, request.app).sleep(response.delay_s)
    if response.drop:
        transport = cast(dict[str, Any], request.scope).get(TRANSPORT_KEY)
        if transport is not None:
            transport.close()
            # Let the server notice the closed connection, so it sends nothing at all.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
    headers = {k: v for k, v in response.headers.items() if k != "content-type"}
    media_type = response.headers.get("content-type", "application/json")
    status = response.status or 502
    return Response(response.body, status_code=status, headers=headers, media_type=media_type)


def json_response(status: int, payload: Any) -> Response[bytes]:
    return Response(json.dumps(payload).encode(), status_code=status, media_type="application/json")


def sign_in_response(reply: SignInAnswer) -> Response[bytes]:
    if reply.location is not None:
        return Response(b"", status_code=reply.status, headers={"location": reply.location})
    if reply.html is not None:
        return Response(reply.html.encode(), status_code=reply.status, media_type="text/html")
    return json_response(reply.status, reply.json)


async def form_fields(request: AnyRequest) -> dict[str, str]:
    """A form body's fields, with the query's added where the body lacks them."""
    fields = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    fields.update({k: v for k, v in request.query_params.items() if k not in fields})
    return fields


async def admin_body(request: AnyRequest) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise admin.AdminError("the body must be JSON") from None


def admin_answer(status: int, work: Callable[[], Any]) -> Response[bytes]:
    """`work()`'s result as JSON with `status`, or the admin error it raised."""
    try:
        return json_response(status, work())
    except admin.AdminError as exc:
        return json_response(exc.status, {"error": str(exc)})


async def admin_with_body(
    request: AnyRequest, status: int, work: Callable[[Any], Any]
) -> Response[bytes]:
    """The request's JSON body handed to `work`: its result with `status`, or the admin error
    (a body that is not JSON included)."""
    try:
        body = await admin_body(request)
    except admin.AdminError as exc:
        return json_response(exc.status, {"error": str(exc)})
    return admin_answer(status, lambda: work(body))


def _app(request: AnyRequest) -> EmulatorApp:
    return cast(EmulatorApp, request.app)


@get("/emulator/stats")
async def admin_stats(request: AnyRequest) -> Response[bytes]:
    return json_response(200, _app(request).stats.snapshot())


@post("/emulator/stats/reset", status_code=200)
async def admin_stats_reset(request: AnyRequest) -> Response[bytes]:
    stats = _app(request).stats
    stats.reset()
    return json_response(200, stats.snapshot())


@post("/emulator/faults", status_code=201)
async def admin_add_fault(request: AnyRequest) -> Response[bytes]:
    return await admin_with_body(
        request, 201, lambda body: admin.add_fault(_app(request).faults, body)
    )


@delete("/emulator/faults", status_code=204)
async def admin_clear_faults(request: AnyRequest) -> None:
    _app(request).faults.clear()


# Call counts and fault rules: the same admin routes on every emulator.
ADMIN_ROUTES: list[HTTPRouteHandler] = [
    admin_stats,
    admin_stats_reset,
    admin_add_fault,
    admin_clear_faults,
]
