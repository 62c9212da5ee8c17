"""Bearer-token authentication: every /api/v1 route acts as the user its token belongs to."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from sqlmodel import Session

from calsync_server.accounts.service import token_hash, user_for_token
from calsync_server.runtime import Runtime

MAX_TOKEN_LENGTH = 512


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


async def _authenticate(request: ASGIConnection[Any, Any, Any, Any]) -> int:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise NotAuthorizedException(
            "a bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="calsync"'},
        )
    runtime: Runtime = request.app.state.runtime
    cache: dict[str, int] = request.app.state.token_cache
    digest = token_hash(token)
    user_id = cache.get(digest)
    if user_id is None:
        user_id = await asyncio.to_thread(_user_id, runtime, token)
        if user_id is None:
            raise NotAuthorizedException(
                "unknown token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        cache[digest] = user_id
    return user_id
