"""Bearer-token authentication: every /api/v1 route acts as the user its token belongs to."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from sqlmodel import Session

from calsync_server.accounts.service import token_hash, user_for_token
from calsync_server.runtime import Runtime

MAX_TOKEN_LENGTH = 512
# How long a token once found is trusted without asking the database again. Users are added,
# removed and re-keyed by `calsync users` straight on the database, possibly beside several
# server processes: a rotated or removed token stops working everywhere within this time.
TOKEN_CACHE_SECONDS = 2.0


def _user_id(runtime: Runtime, token: str) -> int | None:
    with Session(runtime.db) as session:
        user = user_for_token(session, token)
        return user.id if user else None


async def require_user(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """App-wide guard: a handler that acts as a user (one with a `user_id` dependency in scope)
    authenticates before anything else of the request is read. Litestar resolves parameters
    and the body before dependencies, so without this a caller with no token got 400 or 413
    for a bad body instead of 401."""
    if "user_id" in handler.resolve_dependencies() and "user_id" not in connection.state:
        connection.state.user_id = await _authenticate(connection)


async def provide_user_id(request: Request[Any, Any, Any]) -> int:
    """The token's user id; 401 (with WWW-Authenticate) for a missing or unknown token."""
    known = request.state.get("user_id")
    if isinstance(known, int):
        return known
    return await _authenticate(request)


def bearer_token(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The request's bearer token; "" when it has none (or another scheme)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _authenticate(request: ASGIConnection[Any, Any, Any, Any]) -> int:
    token = bearer_token(request)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise NotAuthorizedException(
            "a bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="calsync"'},
        )
    runtime: Runtime = request.app.state.runtime
    cache: dict[str, tuple[int, float]] = request.app.state.token_cache
    digest = token_hash(token)
    now = time.monotonic()
    cached = cache.get(digest)
    if cached is not None and cached[1] > now:
        return cached[0]
    user_id = await asyncio.to_thread(_user_id, runtime, token)
    if user_id is None:
        cache.pop(digest, None)
        raise NotAuthorizedException(
            "unknown token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    if len(cache) > 1000:  # expired entries of tokens nobody sends any more
        for stale in [d for d, (_, until) in cache.items() if until <= now]:
            del cache[stale]
    cache[digest] = (user_id, now + TOKEN_CACHE_SECONDS)
    return user_id
