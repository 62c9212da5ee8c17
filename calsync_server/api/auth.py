"""Bearer-token authentication: every /api/v1 route acts as the user its token belongs to."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException
from sqlmodel import Session

from calsync_server.accounts.service import token_hash, user_for_token
from calsync_server.runtime import Runtime

MAX_TOKEN_LENGTH = 512


def _user_id(runtime: Runtime, token: str) -> int | None:
    with Session(runtime.db) as session:
        user = user_for_token(session, token)
        return user.id if user else None


async def provide_user_id(request: Request[Any, Any, Any]) -> int:
    """The token's user id; 401 (with WWW-Authenticate) for a missing or unknown token."""
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
