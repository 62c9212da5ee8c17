"""calsync's uvicorn settings run the fast server: httptools parses HTTP, uvloop runs the loop."""

from __future__ import annotations

import asyncio

import httpx
from litestar import Litestar, get

from calsync_server.serving import serve_in_thread, server_config


@get("/loop")
async def loop_kind() -> dict[str, str]:
    loop = asyncio.get_running_loop()
    return {"loop": f"{type(loop).__module__}.{type(loop).__qualname__}"}


def test_served_apps_run_on_httptools_and_uvloop() -> None:
    # `calsync serve` and the dashboard's embedded server both take server_config's settings.
    with serve_in_thread(Litestar([loop_kind]), ready_path="loop") as served:
        answer = httpx.get(f"{served.url}loop", timeout=10).json()
        protocol = served.server.config.http_protocol_class
    assert answer["loop"].startswith("uvloop")
    assert protocol.__name__ == "HttpToolsProtocol"


def test_serve_settings_choose_the_fast_server() -> None:
    config = server_config(Litestar([loop_kind]), host="127.0.0.1", port=0)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
