"""`GET /readyz`: readiness for a process manager or load balancer (no token needed)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from calsync_server.runtime import Runtime
from shared.schemas import Readiness


@get(
    "/readyz",
    tags=["health"],
    responses={
        503: ResponseSpec(
            data_container=Readiness,
            description="Not ready: the checks say which part is not",
            generate_examples=False,
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Readiness: the database answers, every worker and the scheduler run, and the queue
    moves (200); otherwise 503 with the same checks. `/healthz` is liveness only."""
    runtime: Runtime = request.app.state.runtime
    readiness = await runtime.readiness()
    status = HTTP_200_OK if readiness.ready else HTTP_503_SERVICE_UNAVAILABLE
    return Response(readiness, status_code=status)
