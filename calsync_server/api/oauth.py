"""Google sign-in over HTTP: start it (API, bearer token) and finish it (Google's redirect)."""

from __future__ import annotations

import asyncio
import html
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, QueryParameter

from calsync_server.accounts.google_signin import (
    CALLBACK_PATH,
    SignInRefused,
    SignInUnavailable,
    finish_sign_in,
    start_sign_in,
)
from calsync_server.accounts.service import SignedIn
from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import WITH_BODY, OptionalBody, errors
from calsync_server.runtime import Runtime
from shared.schemas import GoogleAuthorization, GoogleAuthorize

UserId = NamedDependency[int]
Short = Annotated[str | None, QueryParameter(max_length=4096)]
# `state` is a name Litestar keeps for the app state: the query parameter is mapped by hand.
StateParam = Annotated[str | None, QueryParameter(name="state", max_length=4096)]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def redirect_uri(request: Request[Any, Any, Any]) -> str:
    """Where Google sends the browser back: the public URL when set, else this request's."""
    base = _runtime(request).settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/" + CALLBACK_PATH


class GoogleSignIn(Controller):
    path = "/api/v1/accounts/google"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @post(
        "/authorize",
        status_code=200,
        sync_to_thread=True,
        # 409: no Google OAuth client is configured (or its file cannot be read).
        responses=errors(*WITH_BODY, 409),
        operation_class=OptionalBody,
    )
    def authorize(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        data: JSONBody[GoogleAuthorize | None] = None,
    ) -> GoogleAuthorization:
        """Start a Google sign-in for the token's user: open `auth_url` in a browser."""
        callback = redirect_uri(request)
        hint = data.login_hint if data else None
        try:
            url, state, expires_at = start_sign_in(_runtime(request), user_id, callback, hint)
        except SignInUnavailable as exc:
            raise HTTPException(str(exc), status_code=409) from None
        return GoogleAuthorization(
            auth_url=url, state=state, redirect_uri=callback, expires_at=expires_at
        )


def _page(title: str, message: str, status: int) -> Response[str]:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>calsync: {html.escape(title)}</title></head>"
        "<body style='font-family: sans-serif; max-width: 40em; margin: 4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return Response(
        body,
        status_code=status,
        media_type=MediaType.HTML,
        # The page follows a URL carrying a one-time code: keep it out of caches and referrers.
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _connected(signed_in: SignedIn) -> Response[str]:
    verb = "reconnected" if signed_in.reauthorised else "connected"
    count = len(signed_in.calendars)
    return _page(
        f"Account {verb}",
        f"{signed_in.email} is {verb} to calsync with {count} calendar"
        f"{'' if count == 1 else 's'}. New calendars start with sync off: turn on the ones to "
        "keep in step. You can close this window.",
        200,
    )


@get(f"/{CALLBACK_PATH}", tags=["sign-in"], include_in_schema=False)
async def google_callback(
    request: Request[Any, Any, Any],
    oauth_state: StateParam = None,
    code: Short = None,
    error: Short = None,
) -> Response[str]:
    """Google's redirect after consent. No bearer token: the one-time state names the user."""
    try:
        signed_in = await asyncio.to_thread(
            finish_sign_in, _runtime(request), oauth_state or "", code, error
        )
    except SignInRefused as exc:
        return _page("Sign-in failed", str(exc), exc.status)
    except SignInUnavailable as exc:
        return _page("Sign-in failed", str(exc), 409)
    return _connected(signed_in)
