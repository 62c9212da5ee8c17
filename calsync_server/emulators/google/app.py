"""The emulator's Litestar app: Calendar v3, batch, OAuth and the `/emulator/` admin API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, cast
from urllib.parse import parse_qsl

from litestar import Litestar, Request, Response, delete, get, post, put, route
from litestar.datastructures import State
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from calsync_server.emulators.google import admin, oauth, scenario
from calsync_server.emulators.google.batch import handle_batch
from calsync_server.emulators.google.calendar_api import ApiRequest, ApiResponse
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.state import Emulator

AnyRequest = Request[Any, Any, State]
TRANSPORT_KEY = "calsync.emulator.transport"


class EmulatorApp(Litestar):
    """A Litestar app that can drop a connection on request: it remembers the server's
    transport for each request (uvicorn's send is a method of an object holding it)."""

    emulator: Emulator

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


def _root_url(request: AnyRequest) -> str:
    host = request.headers.get("host") or "127.0.0.1"
    return f"{request.url.scheme}://{host}/"


async def _api_request(request: AnyRequest) -> ApiRequest:
    raw_path = cast(dict[str, Any], request.scope).get("raw_path") or request.url.path.encode()
    path = bytes(raw_path).decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return ApiRequest(
        method=request.method,
        path=path,
        query=parse_qsl(query, keep_blank_values=True),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
        root_url=_root_url(request),
    )


async def _answer(request: AnyRequest, answer: ApiResponse) -> Response[bytes]:
    if answer.delay_s > 0:
        await asyncio.sleep(answer.delay_s)
    if answer.drop:
        transport = cast(dict[str, Any], request.scope).get(TRANSPORT_KEY)
        if transport is not None:
            transport.close()
            # Let the server notice the closed connection, so it sends nothing at all.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
    headers = {k: v for k, v in answer.headers.items() if k != "content-type"}
    media_type = answer.headers.get("content-type", "application/json")
    status = answer.status or 502
    return Response(answer.body, status_code=status, headers=headers, media_type=media_type)


def _json(status: int, payload: Any) -> Response[bytes]:
    return Response(json.dumps(payload).encode(), status_code=status, media_type="application/json")


def _emulator(request: AnyRequest) -> Emulator:
    return cast(EmulatorApp, request.app).emulator


@route(
    "/calendar/v3/{path:path}",
    http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
    status_code=200,
)
async def calendar_v3(request: AnyRequest) -> Response[bytes]:
    # Routed again from the raw path, which keeps percent-encoding intact.
    emulator = _emulator(request)
    emulator.stats.request()
    return await _answer(request, emulator.api.handle(await _api_request(request)))


@post("/batch/calendar/v3", status_code=200)
async def batch(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    return await _answer(request, handle_batch(emulator.api, await _api_request(request)))


def _oauth_response(answer: oauth.OAuthAnswer) -> Response[bytes]:
    if answer.location is not None:
        return Response(b"", status_code=answer.status, headers={"location": answer.location})
    if answer.html is not None:
        return Response(answer.html.encode(), status_code=answer.status, media_type="text/html")
    return _json(answer.status, answer.json)


async def _form(request: AnyRequest) -> dict[str, str]:
    fields = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    fields.update({k: v for k, v in request.query_params.items() if k not in fields})
    return fields


@get("/o/oauth2/auth")
async def oauth_authorize(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    params = {k: v for k, v in request.query_params.items()}
    self_url = f"{_root_url(request)}o/oauth2/auth"
    return _oauth_response(oauth.authorize(emulator.store, params, self_url))


@post("/token", status_code=200)
async def oauth_token(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    return _oauth_response(oauth.token(emulator.store, await _form(request)))


@post("/revoke", status_code=200)
async def oauth_revoke(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    form = await _form(request)
    return _oauth_response(oauth.revoke(emulator.store, form.get("token", "")))


@get("/oauth2/v3/userinfo")
async def oauth_userinfo(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    answer = oauth.userinfo(emulator.store, request.headers.get("authorization"))
    return _oauth_response(answer)


async def _admin_body(request: AnyRequest) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise admin.AdminError("the body must be JSON") from None


@post("/emulator/accounts", status_code=201)
async def admin_accounts(request: AnyRequest) -> Response[bytes]:
    try:
        return _json(201, admin.create_account(_emulator(request), await _admin_body(request)))
    except admin.AdminError as exc:
        return _json(exc.status, {"error": str(exc)})


@put("/emulator/accounts/{email:str}/granted-scope", status_code=200)
async def admin_granted_scope(request: AnyRequest) -> Response[bytes]:
    try:
        body = await _admin_body(request)
    except admin.AdminError as exc:
        return _json(exc.status, {"error": str(exc)})
    email = str(request.path_params["email"])
    return _oauth_response(oauth.grant_scope(_emulator(request).store, email, body))


@get("/emulator/stats")
async def admin_stats(request: AnyRequest) -> Response[bytes]:
    return _json(200, _emulator(request).stats.snapshot())


@post("/emulator/stats/reset", status_code=200)
async def admin_stats_reset(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.reset()
    return _json(200, emulator.stats.snapshot())


@post("/emulator/faults", status_code=201)
async def admin_add_fault(request: AnyRequest) -> Response[bytes]:
    try:
        return _json(201, admin.add_fault(_emulator(request), await _admin_body(request)))
    except admin.AdminError as exc:
        return _json(exc.status, {"error": str(exc)})


@delete("/emulator/faults", status_code=204)
async def admin_clear_faults(request: AnyRequest) -> None:
    _emulator(request).faults.clear()


@post("/emulator/calendars/{calendar_id:str}/expire-sync-tokens", status_code=200)
async def admin_expire(request: AnyRequest) -> Response[bytes]:
    calendar_id = str(request.path_params["calendar_id"])
    try:
        return _json(200, admin.expire_sync_tokens(_emulator(request), calendar_id))
    except admin.AdminError as exc:
        return _json(exc.status, {"error": str(exc)})


@get("/emulator/channels")
async def admin_channels(request: AnyRequest) -> Response[bytes]:
    return _json(200, _emulator(request).push.listing())


def create_emulator_app(config: EmulatorConfig | None = None) -> Litestar:
    """A fresh emulator (its own memory) seeded with `config.scenario`."""
    config = config or EmulatorConfig()
    emulator = Emulator(config)
    scenario.seed(emulator.store, config.scenario)
    live_task: list[asyncio.Task[None]] = []

    async def startup() -> None:
        await emulator.push.start()
        if config.live:
            changes = scenario.LiveChanges(emulator.store, config.live_interval_s)
            live_task.append(asyncio.get_running_loop().create_task(changes.run()))

    async def shutdown() -> None:
        for task in live_task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await emulator.push.close()

    app = EmulatorApp(
        route_handlers=[
            calendar_v3,
            batch,
            oauth_authorize,
            oauth_token,
            oauth_revoke,
            oauth_userinfo,
            admin_accounts,
            admin_granted_scope,
            admin_stats,
            admin_stats_reset,
            admin_add_fault,
            admin_clear_faults,
            admin_expire,
            admin_channels,
        ],
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=None,
    )
    app.emulator = emulator
    return app
