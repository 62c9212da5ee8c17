"""The calsync server as a Litestar app: webhooks, the JSON API and its stream, health, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from calsync_server.api.auth import require_user
from calsync_server.api.bodies import CalsyncRequest
from calsync_server.api.caldav import CalDAVSignIn
from calsync_server.api.errors import EXCEPTION_HANDLERS
from calsync_server.api.feed import BusyFeedApi, busy_feed
from calsync_server.api.health import readyz
from calsync_server.api.oauth import OAuthSignIn, oauth_callback
from calsync_server.api.openapi import ClosedStructs
from calsync_server.api.purge import Purge
from calsync_server.api.routes import ApiV1
from calsync_server.api.stream import stream
from calsync_server.api.timeline import TimelineApi
from calsync_server.api.trust import TrustApi
from calsync_server.metrics import CONTENT_TYPE
from calsync_server.push.webhooks import google_webhook, push_webhook
from calsync_server.runtime import Runtime
from shared.settings import Settings

# Bodies of API requests are small JSON documents; anything bigger is refused with 413.
MAX_REQUEST_BYTES = 64 * 1024


@get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no token needed)."""
    return {"status": "ok"}


@get("/metrics", tags=["health"], sync_to_thread=True, media_type=CONTENT_TYPE)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text: notifications, jobs, syncs, provider calls, errors, latencies."""
    runtime: Runtime = request.app.state.runtime
    # The full content type as a header: given as media_type, Litestar appends a second charset.
    return Response(runtime.metrics.render(), headers={"content-type": CONTENT_TYPE})


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, **runtime_options: Any
) -> Litestar:
    """The server. `runtime_options` reach `Runtime` (tests: a clock, fast retries, no workers)."""
    built = runtime or Runtime(settings, **runtime_options)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await built.start()
        try:
            yield
        finally:
            await built.stop()

    # Every route but the webhooks and health checks, behind the guard that authenticates a
    # user's route before any parameter or body of it is read (401 first). The webhooks act as
    # no user and sit outside: a guard costs every request it covers (Litestar copies the
    # handler for each call), a sixth of a webhook's time on the fast server.
    routes = Router(
        "/",
        route_handlers=[
            ApiV1,
            Purge,
            TimelineApi,
            TrustApi,
            BusyFeedApi,
            busy_feed,
            stream,
            OAuthSignIn,
            CalDAVSignIn,
            oauth_callback,
        ],
        guards=[require_user],
    )
    return Litestar(
        route_handlers=[healthz, readyz, metrics, google_webhook, push_webhook, routes],
        lifespan=[lifespan],
        state=State({"runtime": built, "token_cache": {}}),
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_REQUEST_BYTES,
        request_class=CalsyncRequest,  # every JSON body is decoded with a depth limit
        plugins=[ClosedStructs()],  # the OpenAPI document's schemas of the wire types
        openapi_config=OpenAPIConfig(
            title="calsync",
            version="1",
            path="/schema",
            components=Components(
                security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}
            ),
        ),
        debug=False,
    )
