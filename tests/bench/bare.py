"""The reference for webhook acknowledgement: Litestar endpoints that only answer (200 as for
Google, 202 as for Graph), served by uvicorn on the server setup `calsync serve` uses
(`python -m uvicorn tests.bench.bare:app --http httptools --loop uvloop`)."""

from __future__ import annotations

from litestar import Litestar, get, post


@post("/webhooks/google", status_code=200)
async def google_webhook() -> dict[str, str]:
    return {"outcome": "ok"}


@post("/webhooks/microsoft/{key:str}", status_code=202)
async def graph_webhook(key: str) -> dict[str, str]:
    return {"outcome": "ok"}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[google_webhook, graph_webhook, healthz], debug=False)
