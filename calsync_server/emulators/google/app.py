"""The emulator's Litestar app: Calendar v3, batch, OAuth and the `/emulator/` admin API."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from litestar import Request, Response, get, post, put, route
from litestar.datastructures import State

from calsync_server.emulators.common.admin import AdminError
from calsync_server.emulators.common.transport import (
    ADMIN_ROUTES,
    EmulatorApp,
    admin_answer,
    admin_body,
    admin_with_body,
    api_request,
    form_fields,
    json_response,
    root_url,
    sign_in_response,
    to_response,
)
from calsync_server.emulators.google import admin, oauth, scenario
from calsync_server.emulators.google.batch import handle_batch
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.state import Emulator

AnyRequest = Request[Any, Any, State]


class GoogleEmulatorApp(EmulatorApp):
    emulator: Emulator


def _emulator(request: AnyRequest) -> Emulator:
    return cast(GoogleEmulatorApp, request.app).emulator


@route(
    "/calendar/v3/{path:path}",
    http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
    status_code=200,
)
async def calendar_v3(request: AnyRequest) -> Response[bytes]:
    # Routed again from the raw path, which keeps percent-encoding intact.
    emulator = _emulator(request)
    emulator.stats.request()
    return await to_response(request, emulator.api.handle(await api_request(request)))


@post("/batch/calendar/v3", status_code=200)
async def batch(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    return await to_response(request, handle_batch(emulator.api, await api_request(request)))


@get("/o/oauth2/auth")
async def oauth_authorize(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    params = {k: v for k, v in request.query_params.items()}
    self_url = f"{root_url(request)}o/oauth2/auth"
    return sign_in_response(oauth.authorize(emulator.store, params, self_url))


@post("/token", status_code=200)
async def oauth_token(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    return sign_in_response(oauth.token(emulator.store, await form_fields(request)))


@post("/revoke", status_code=200)
async def oauth_revoke(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    form = await form_fields(request)
    return sign_in_response(oauth.revoke(emulator.store, form.get("token", "")))


@get("/oauth2/v3/userinfo")
async def oauth_userinfo(request: AnyRequest) -> Response[bytes]:
    emulator = _emulator(request)
    emulator.stats.request()
    answer = oauth.userinfo(emulator.store, request.headers.get("authorization"))
    return sign_in_response(answer)


@post("/emulator/accounts", status_code=201)
async def admin_accounts(request: AnyRequest) -> Response[bytes]:
    return await admin_with_body(
        request, 201, lambda body: admin.create_account(_emulator(request), body)
    )


@put("/emulator/accounts/{email:str}/granted-scope", status_code=200)
async def admin_granted_scope(request: AnyRequest) -> Response[bytes]:
    try:
        body = await admin_body(request)
    except AdminError as exc:
        return json_response(exc.status, {"error": str(exc)})
    email = str(request.path_params["email"])
    return sign_in_response(oauth.grant_scope(_emulator(request).store, email, body))


@post("/emulator/calendars/{calendar_id:str}/expire-sync-tokens", status_code=200)
async def admin_expire(request: AnyRequest) -> Response[bytes]:
    calendar_id = str(request.path_params["calendar_id"])
    return admin_answer(200, lambda: admin.expire_sync_tokens(_emulator(request), calendar_id))


@get("/emulator/quota")
async def admin_quota(request: AnyRequest) -> Response[bytes]:
    return json_response(200, _emulator(request).quota.settings())


@put("/emulator/quota", status_code=200)
async def admin_set_quota(request: AnyRequest) -> Response[bytes]:
    return await admin_with_body(request, 200, lambda body: admin.quota(_emulator(request), body))


@get("/emulator/channels")
async def admin_channels(request: AnyRequest) -> Response[bytes]:
    return json_response(200, _emulator(request).push.listing())


@get("/emulator/channels/stopped")
async def admin_stopped_channels(request: AnyRequest) -> Response[bytes]:
    """The ids of the channels channels.stop ended (not those that expired), oldest first."""
    return json_response(200, _emulator(request).push.stopped())


def create_emulator_app(config: EmulatorConfig | None = None) -> GoogleEmulatorApp:
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

    app = GoogleEmulatorApp(
        route_handlers=[
            *ADMIN_ROUTES,
            calendar_v3,
            batch,
            oauth_authorize,
            oauth_token,
            oauth_revoke,
            oauth_userinfo,
            admin_accounts,
            admin_granted_scope,
            admin_expire,
            admin_channels,
            admin_stopped_channels,
            admin_quota,
            admin_set_quota,
        ],
        on_startup=[startup],
        on_shutdown=[shutdown],
        openapi_config=None,
    )
    app.emulator, app.stats, app.faults = emulator, emulator.stats, emulator.faults
    app.sleep = config.sleep
    return app
