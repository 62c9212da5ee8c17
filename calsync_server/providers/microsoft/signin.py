"""Signing in to Microsoft with MSAL (auth code + PKCE), and the access tokens a provider
takes from the serialized token cache with `acquire_token_silent`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import msal
import requests

from calsync_server.providers.model import ErrorKind, ProviderError

# MSAL adds openid, profile and offline_access itself (and refuses them if passed).
SCOPES = ("Calendars.ReadWrite", "User.Read")
# The authority's token endpoint said the login is over: the person must sign in again.
REFUSED_ERRORS = frozenset(
    {
        "invalid_grant",
        "interaction_required",
        "consent_required",
        "login_required",
        "invalid_client",
    }
)


def http_session(verify: str | None = None) -> requests.Session:
    """The HTTP session MSAL talks through. With ``verify`` (a CA bundle path, the emulator's),
    the session ignores the environment: `requests` lets REQUESTS_CA_BUNDLE override MSAL's
    own ``verify=``, which would make the emulator's certificate untrusted."""
    session = requests.Session()
    if verify is not None:
        session.trust_env = False
        session.verify = verify
    return session


def client_app(
    client_id: str,
    authority: str,
    *,
    cache: msal.SerializableTokenCache | None = None,
    client_secret: str | None = None,
    verify: str | None = None,
) -> msal.ClientApplication:
    """A public client (a desktop install), or a confidential one when the Entra app has a
    secret (a server with a public URL). ``authority`` is the login root plus the tenant, such
    as `https://login.microsoftonline.com/common` (work and personal accounts)."""
    options: dict[str, Any] = {
        "authority": authority,
        "token_cache": cache,
        "http_client": http_session(verify),
        # Only Microsoft's own clouds are "known"; an emulator or sovereign root is not.
        "instance_discovery": False,
    }
    if client_secret is not None:
        return msal.ConfidentialClientApplication(
            client_id, client_credential=client_secret, **options
        )
    return msal.PublicClientApplication(client_id, **options)


def begin_sign_in(
    app: msal.ClientApplication, redirect_uri: str, *, login_hint: str | None = None
) -> dict[str, Any]:
    """The auth code flow (PKCE included): send the person to ``flow["auth_uri"]`` and keep
    the flow until they come back."""
    flow: dict[str, Any] = app.initiate_auth_code_flow(
        list(SCOPES), redirect_uri=redirect_uri, login_hint=login_hint
    )
    return flow


def finish_sign_in(
    app: msal.ClientApplication, flow: dict[str, Any], reply: Mapping[str, str]
) -> str:
    """Redeem the code the redirect brought; the signed-in account's home account id (the
    cache the app was built with now holds its tokens)."""
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, dict(reply))
    if "access_token" not in result:
        raise ProviderError(
            ErrorKind.AUTH, str(result.get("error_description") or result.get("error") or result)
        )
    info = result.get("id_token_claims") or {}
    for account in app.get_accounts():
        if account.get("local_account_id") == info.get("oid") or len(app.get_accounts()) == 1:
            return str(account["home_account_id"])
    raise ProviderError(ErrorKind.AUTH, "the sign-in gave no account")


class MsalTokens:
    """Access tokens for one account from its MSAL token cache, refreshed by MSAL as needed.

    ``on_cache_change`` receives the serialized cache whenever MSAL changed it (a rotated
    refresh token), so the caller can seal it away again.
    """

    def __init__(
        self,
        app: msal.ClientApplication,
        cache: msal.SerializableTokenCache,
        home_account_id: str,
        *,
        on_cache_change: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.cache = cache
        self.home_account_id = home_account_id
        self.on_cache_change = on_cache_change
        self._lock = threading.Lock()

    @classmethod
    def from_cache(
        cls,
        serialized_cache: str,
        home_account_id: str,
        *,
        client_id: str,
        authority: str,
        client_secret: str | None = None,
        verify: str | None = None,
        on_cache_change: Callable[[str], None] | None = None,
    ) -> MsalTokens:
        cache = msal.SerializableTokenCache()
        cache.deserialize(serialized_cache)
        app = client_app(
            client_id, authority, cache=cache, client_secret=client_secret, verify=verify
        )
        return cls(app, cache, home_account_id, on_cache_change=on_cache_change)

    def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; ProviderError(AUTH) when the login is refused,
        ProviderError(TRANSIENT) when the login service could not be reached."""
        with self._lock:
            accounts = [
                a
                for a in self.app.get_accounts()
                if a.get("home_account_id") == self.home_account_id
            ]
            if not accounts:
                raise ProviderError(ErrorKind.AUTH, "no signed-in account in the token cache")
            try:
                result = self.app.acquire_token_silent_with_error(
                    list(SCOPES), accounts[0], force_refresh=force_refresh
                )
            except (requests.RequestException, OSError) as exc:
                raise ProviderError(
                    ErrorKind.TRANSIENT, f"the sign-in service is unreachable: {exc}"
                ) from exc
            self._report_cache()
        if result and "access_token" in result:
            return str(result["access_token"])
        error = str((result or {}).get("error") or "")
        detail = str((result or {}).get("error_description") or error or "no token")
        if result is None or error in REFUSED_ERRORS or not error:
            raise ProviderError(ErrorKind.AUTH, f"the login was refused: {detail}")
        raise ProviderError(ErrorKind.TRANSIENT, f"the sign-in service failed: {detail}")

    def serialized(self) -> str:
        return str(self.cache.serialize())

    def _report_cache(self) -> None:
        if self.cache.has_state_changed:
            serialized = self.cache.serialize()
            self.cache.has_state_changed = False
            if self.on_cache_change is not None:
                self.on_cache_change(serialized)
