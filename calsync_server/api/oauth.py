"""Redirect sign-in over HTTP (Google, Microsoft): start it (API, bearer token) and finish it
(the provider's redirect to `/oauth/{provider}/callback`)."""

from __future__ import annotations

import asyncio
import html
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, PathParameter

from calsync_server.accounts.oauth_signin import (
    OAUTH_PROVIDERS,
    SignInRefused,
    SignInUnavailable,
    callback_path,
    finish_sign_in,
    redirect_uri,
    start_sign_in,
)
from calsync_server.accounts.service import SignedIn
from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import WITH_BODY, OptionalBody, errors
from calsync_server.providers.registry import GOOGLE, MICROSOFT
from calsync_server.runtime import Runtime
from shared.schemas import OAuthAuthorization, OAuthAuthorize

UserId = NamedDependency[int]
ProviderName = Annotated[str, PathParameter(max_length=32)]
# What a redirect may bring back: a handful of parameters (code, state, session_state, error,
# error_description, error_uri...), none longer than a code.
MAX_REPLY_PARAMETERS = 16
MAX_REPLY_VALUE = 4096


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _authorize(
    request: Request[Any, Any, Any], user_id: int, provider: str, data: OAuthAuthorize | None
) -> OAuthAuthorization:
    runtime = _runtime(request)
    hint = data.login_hint if data else None
    try:
        callback = redirect_uri(runtime.settings, provider, str(request.base_url))
        url, state, expires_at = start_sign_in(runtime, user_id, provider, callback, hint)
    except SignInUnavailable as exc:
        raise HTTPException(str(exc), status_code=409) from None
    except SignInRefused as exc:
        raise HTTPException(str(exc), status_code=exc.status) from None
    return OAuthAuthorization(
        auth_url=url, state=state, redirect_uri=callback, expires_at=expires_at
    )


class OAuthSignIn(Controller):
    path = "/api/v1/accounts"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @post(
        "/google/authorize",
        status_code=200,
        sync_to_thread=True,
        # 409: no Google OAuth client is configured (or its file cannot be read).
        responses=errors(*WITH_BODY, 409),
        operation_class=OptionalBody,
    )
    def authorize_google(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        data: JSONBody[OAuthAuthorize | None] = None,
    ) -> OAuthAuthorization:
        """Start a Google sign-in for the token's user: open `auth_url` in a browser."""
        return _authorize(request, user_id, GOOGLE, data)

    @post(
        "/microsoft/authorize",
        status_code=200,
        sync_to_thread=True,
        # 409: no Entra app is configured (CALSYNC_MICROSOFT_CLIENT_ID); 502: Microsoft's
        # sign-in service could not be reached.
        responses=errors(*WITH_BODY, 409, 502),
        operation_class=OptionalBody,
    )
    def authorize_microsoft(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        data: JSONBody[OAuthAuthorize | None] = None,
    ) -> OAuthAuthorization:
        """Start a Microsoft 365 / Outlook.com sign-in for the token's user (work, school or
        personal account): open `auth_url` in a browser."""
        return _authorize(request, user_id, MICROSOFT, data)


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


def _reply(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    """The redirect's query parameters, each once; None when there are too many or one is
    too long to be a provider's."""
    params = request.query_params
    if len(params) > MAX_REPLY_PARAMETERS:
        return None
    reply = {key: str(params.get(key) or "") for key in params}
    if any(len(k) > 64 or len(v) > MAX_REPLY_VALUE for k, v in reply.items()):
        return None
    return reply


@get("/oauth/{provider:str}/callback", tags=["sign-in"], include_in_schema=False)
async def oauth_callback(request: Request[Any, Any, Any], provider: ProviderName) -> Response[str]:
    """The provider's redirect after consent. No bearer token: the one-time state names the
    user. Every query parameter goes to the provider's sign-in (MSAL checks the whole reply)."""
    if provider not in OAUTH_PROVIDERS:
        return _page("Not found", "calsync has no such sign-in.", 404)
    reply = _reply(request)
    if reply is None:
        return _page(
            "Sign-in failed", "this sign-in link is not valid: start again from calsync", 400
        )
    try:
        signed_in = await asyncio.to_thread(finish_sign_in, _runtime(request), provider, reply)
    except SignInRefused as exc:
        return _page("Sign-in failed", str(exc), exc.status)
    except SignInUnavailable as exc:
        return _page("Sign-in failed", str(exc), 409)
    return _connected(signed_in)


__all__ = ["OAuthSignIn", "callback_path", "oauth_callback"]
