"""The Graph emulator's Litestar app: identity v2.0, Graph v1.0 (with `$batch`) and the
`/emulator/` admin API."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from litestar import Request, Response, get, post, put, route
from litestar.datastructures import State

from calsync_server.emulators.common import transport
from calsync_server.emulators.microsoft import admin, identity, scenario
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.state import GraphEmulator

AnyRequest = Request[Any, Any, State]


class GraphEmulatorApp(transport.EmulatorApp):
    graph: GraphEmulator


def _graph(request: AnyRequest) -> GraphEmulator:
    return cast(GraphEmulatorApp, request.app).graph


@route("/v1.0/{path:path}", http_method=["GET", "POST", "PATCH", "PUT", "DELETE"], status_code=200)
async def graph_v1(request: AnyRequest) -> Response[bytes]:
    emulator = _graph(request)
    emulator.stats.request()
    return await transport.to_response(
        request, await emulator.api.handle(await transport.api_request(request))
    )


@get("/{tenant:str}/v2.0/.well-known/openid-configuration")
async def openid_configuration(request: AnyRequest) -> Response[bytes]:
    tenant = str(request.path_params["tenant"])
    _graph(request).stats.request()
    _graph(request).stats.call("openid-configuration")
    return transport.json_response(
        200, identity.openid_configuration(transport.root_url(request), tenant)
    )


@get("/{tenant:str}/discovery/v2.0/keys")
async def keys(request: AnyRequest) -> Response[bytes]:
    tenant = str(request.path_params["tenant"])
    del tenant
    return transport.json_response(200, {"keys": []})


@get("/{tenant:str}/oauth2/v2.0/authorize")
async def authorize(request: AnyRequest) -> Response[bytes]:
    tenant = str(request.path_params["tenant"])
    emulator = _graph(request)
    emulator.stats.request()
    params = {k: v for k, v in request.query_params.items()}
    self_url = f"{transport.root_url(request)}{tenant}/oauth2/v2.0/authorize"
    return transport.sign_in_response(identity.authorize(emulator.store, params, self_url))


@post("/{tenant:str}/oauth2/v2.0/token", status_code=200)
async def token(request: AnyRequest) -> Response[bytes]:
    tenant = str(request.path_params["tenant"])
    del tenant
    emulator = _graph(request)
    emulator.stats.request()
    emulator.stats.call("token")
    fault = emulator.faults.take("token")
    if fault is not None and fault.delay_ms:
        await emulator.api.sleep(fault.delay_ms / 1000)
    if fault is not None and fault.status >= 400:
        return transport.json_response(
            fault.status, {"error": fault.reason or "temporarily_unavailable"}
        )
    answer = identity.token(
        emulator.store, await transport.form_fields(request), transport.root_url(request)
    )
    return transport.sign_in_response(answer)


@post("/emulator/accounts", status_code=201)
async def admin_accounts(request: AnyRequest) -> Response[bytes]:
    return await transport.admin_with_body(
        request, 201, lambda body: admin.create_account(_graph(request), body)
    )


@post("/emulator/accounts/{email:str}/events", status_code=201)
async def admin_events(request: AnyRequest) -> Response[bytes]:
    email = str(request.path_params["email"])
    return await transport.admin_with_body(
        request, 201, lambda body: admin.add_event(_graph(request), email, body)
    )


@post("/emulator/accounts/{email:str}/calendars", status_code=201)
async def admin_calendars(request: AnyRequest) -> Response[bytes]:
    email = str(request.path_params["email"])
    return await transport.admin_with_body(
        request, 201, lambda body: admin.add_calendar(_graph(request), email, body)
    )


@post("/emulator/accounts/{email:str}/refuse-login", status_code=200)
async def admin_refuse_login(request: AnyRequest) -> Response[bytes]:
    email = str(request.path_params["email"])
    return transport.admin_answer(200, lambda: admin.refuse_login(_graph(request), email))


@get("/emulator/clock")
async def admin_clock(request: AnyRequest) -> Response[bytes]:
    return transport.json_response(200, {"now": _graph(request).clock.now().isoformat()})


@post("/emulator/clock/advance", status_code=200)
async def admin_clock_advance(request: AnyRequest) -> Response[bytes]:
    return await transport.admin_with_body(
        request, 200, lambda body: admin.advance_clock(_graph(request), body)
    )


@get("/emulator/throttling")
async def admin_throttling(request: AnyRequest) -> Response[bytes]:
    return transport.json_response(200, _graph(request).throttle.settings())


@put("/emulator/throttling", status_code=200)
async def admin_set_throttling(request: AnyRequest) -> Response[bytes]:
    return await transport.admin_with_body(
        request, 200, lambda body: admin.throttling(_graph(request), body)
    )


@post("/emulator/calendars/{calendar_id:str}/expire-cursors", status_code=200)
async def admin_expire(request: AnyRequest) -> Response[bytes]:
    calendar_id = str(request.path_params["calendar_id"])
    return await transport.admin_with_body(
        request, 200, lambda body: admin.expire_cursors(_graph(request), calendar_id, body)
    )


@get("/emulator/subscriptions")
async def admin_subscriptions(request: AnyRequest) -> Response[bytes]:
    return transport.json_response(200, _graph(request).subscriptions.listing())


@post("/emulator/subscriptions/{subscription_id:str}/lifecycle", status_code=200)
async def admin_lifecycle(request: AnyRequest) -> Response[bytes]:
    subscription_id = str(request.path_params["subscription_id"])
    return await transport.admin_with_body(
        request, 200, lambda body: admin.lifecycle(_graph(request), subscription_id, body)
    )


def create_graph_app(config: GraphEmulatorConfig | None = None) -> GraphEmulatorApp:
    """A fresh Graph emulator (its own memory) seeded with `config.scenario`."""
    config = config or GraphEmulatorConfig()
    emulator = GraphEmulator(config)
    scenario.seed(emulator.store, config.scenario)
    tasks: list[asyncio.Task[None]] = []

    async def startup() -> None:
        await emulator.subscriptions.start()
        if config.live:
            changes = scenario.LiveChanges(emulator.store, config.live_interval_s)
            tasks.append(asyncio.get_running_loop().create_task(changes.run()))

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await emulator.subscriptions.close()

    app = GraphEmulatorApp(
        route_handlers=[
            *transport.ADMIN_ROUTES,
            graph_v1,
            openid_configuration,
            keys,
            authorize,
            token,
            admin_accounts,
            admin_events,
            admin_calendars,
            admin_refuse_login,
            admin_clock,
            admin_clock_advance,
            admin_throttling,
            admin_set_throttling,
            admin_expire,
            admin_subscriptions,
            admin_lifecycle,
        ],
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=None,
    )
    app.graph, app.stats, app.faults = emulator, emulator.stats, emulator.faults
    app.sleep = config.sleep
    return app
