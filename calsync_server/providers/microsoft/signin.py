"""Signing in to Microsoft with MSAL (auth code + PKCE), and the access tokens a provider
takes from the serialized token cache with `acquire_token_silent`."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msal
import requests

from calsync_server.providers.credentials import MicrosoftTokenCache, StoredCredentials
from calsync_server.providers.model import ErrorKind, ProviderError
from calsync_server.providers.signin import SignInRefused, SignInUnavailable

# MSAL adds openid, profile and offline_access itself (and refuses them if passed).
SCOPES = ("Calendars.ReadWrite", "User.Read")
# Work or school accounts of any organisation, and personal Microsoft accounts.
TENANT = "common"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
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


# The authority's discovery answers (its endpoints, good for a day), shared by every MSAL app
# of the process: an app is built per sync, and each would otherwise fetch them again.
DISCOVERY_CACHE: dict[Any, Any] = {}


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
        "http_cache": DISCOVERY_CACHE,
    }
    if client_secret is not None:
        return msal.ConfidentialClientApplication(
            client_id, client_credential=client_secret, **options
        )
    return msal.PublicClientApplication(client_id, **options)


def begin_sign_in(
    app: msal.ClientApplication,
    redirect_uri: str,
    *,
    login_hint: str | None = None,
    state: str | None = None,
    prompt: str | None = None,
) -> dict[str, Any]:
    """The auth code flow (PKCE included): send the person to ``flow["auth_uri"]`` and keep
    the flow until they come back. ``state`` is MSAL's own random one when not given."""
    with warnings.catch_warnings():
        # MSAL recommends response_mode=form_post (RFC 9700: no code in the URL). The code
        # comes back in the query to calsync's own callback, works once and only with the
        # PKCE verifier that never leaves the server, and the page it lands on sends no
        # referrer and is not cached.
        warnings.filterwarnings("ignore", "response_mode='form_post' is recommended")
        flow: dict[str, Any] = app.initiate_auth_code_flow(
            list(SCOPES),
            redirect_uri=redirect_uri,
            login_hint=login_hint,
            state=state,
            prompt=prompt,
        )
    return flow


@dataclass(frozen=True)
class Redeemed:
    """A redeemed sign-in: the account in the token cache and the id token's claims."""

    home_account_id: str
    claims: dict[str, Any]
    granted: str  # the token answer's scope, space-separated


def redeem(app: msal.ClientApplication, flow: dict[str, Any], reply: Mapping[str, str]) -> Redeemed:
    """Redeem the code the redirect brought (MSAL checks the state, PKCE and the nonce); the
    cache the app was built with now holds the account's tokens. ProviderError(AUTH) when the
    login service refused, ValueError/RuntimeError (MSAL's) when the reply does not belong to
    the flow."""
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, dict(reply))
    if "access_token" not in result:
        raise ProviderError(
            ErrorKind.AUTH, str(result.get("error_description") or result.get("error") or result)
        )
    claims = dict(result.get("id_token_claims") or {})
    granted = result.get("scope") or " ".join(SCOPES)
    if isinstance(granted, list):
        granted = " ".join(str(s) for s in granted)
    accounts = app.get_accounts()
    for account in accounts:
        if account.get("local_account_id") == claims.get("oid") or len(accounts) == 1:
            return Redeemed(str(account["home_account_id"]), claims, str(granted))
    raise ProviderError(ErrorKind.AUTH, "the sign-in gave no account")


def finish_sign_in(
    app: msal.ClientApplication, flow: dict[str, Any], reply: Mapping[str, str]
) -> str:
    """Redeem the code the redirect brought; the signed-in account's home account id."""
    return redeem(app, flow, reply).home_account_id


def missing_scopes(granted: str) -> list[str]:
    """The scopes calsync asked for that ``granted`` lacks (Graph may spell them whole:
    `https://graph.microsoft.com/Calendars.ReadWrite`; case does not matter)."""
    have = {s.lower().removeprefix(GRAPH_RESOURCE) for s in granted.split()}
    return [s for s in SCOPES if s.lower() not in have]


def sign_in_email(claims: Mapping[str, Any]) -> str | None:
    """The account's address, lower case: `preferred_username` (the UPN of a work account,
    the address of a personal one), else `email`; None when neither is an address."""
    for claim in ("preferred_username", "email"):
        value = claims.get(claim)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    return None


class MicrosoftSignIn:
    """Microsoft's OAuthSignIn: MSAL's auth code flow with PKCE against the `common`
    authority (work and personal accounts) for the Entra app in CALSYNC_MICROSOFT_CLIENT_ID,
    a public client (no secret: the person's own app registration, see README). The whole
    MSAL flow (state, PKCE verifier, nonce) is the flow state kept on the server."""

    display_name = "Microsoft"
    # Entra matches a registered `http://localhost/...` on any port, and the portal takes no
    # http redirect to 127.0.0.1: the embedded server's redirect is written with localhost.
    loopback_host: str | None = "localhost"

    def __init__(self, client_id: str | None, login_root: str, ca_file: str | None) -> None:
        self.client_id = client_id
        self.authority = login_root.rstrip("/") + "/" + TENANT
        self.ca_file = ca_file

    def _app(self, cache: msal.SerializableTokenCache | None = None) -> msal.ClientApplication:
        if not self.client_id:
            raise SignInUnavailable(
                "no Microsoft app is configured: register one in Microsoft Entra (README, "
                "'Microsoft 365 / Outlook.com') and set CALSYNC_MICROSOFT_CLIENT_ID to its "
                "application (client) id"
            )
        try:
            return client_app(self.client_id, self.authority, cache=cache, verify=self.ca_file)
        except (requests.RequestException, OSError, ValueError) as exc:
            # MSAL reads the authority's OpenID configuration as the app is made.
            raise SignInRefused(
                f"Microsoft's sign-in service cannot be reached at {self.authority}: "
                f"{type(exc).__name__}",
                502,
            ) from None

    def begin(self, redirect_uri: str, state: str, login_hint: str | None) -> tuple[str, str]:
        app = self._app()
        # Without a hint the person may be signed in to several Microsoft accounts in the
        # browser: let them choose rather than take whichever is current.
        prompt = None if login_hint else "select_account"
        try:
            flow = begin_sign_in(
                app, redirect_uri, login_hint=login_hint, state=state, prompt=prompt
            )
        except (requests.RequestException, OSError) as exc:
            raise SignInRefused(
                f"Microsoft's sign-in service failed: {type(exc).__name__}", 502
            ) from None
        return str(flow["auth_uri"]), json.dumps(flow)

    def finish(
        self, redirect_uri: str, flow_state: str, reply: Mapping[str, str]
    ) -> tuple[str, StoredCredentials]:
        del redirect_uri  # the flow holds it
        try:
            flow = json.loads(flow_state)
        except ValueError:
            flow = None
        if not isinstance(flow, dict):
            raise SignInRefused("this sign-in cannot be finished: start again from calsync")
        cache = msal.SerializableTokenCache()
        app = self._app(cache)
        try:
            redeemed = redeem(app, flow, reply)
        except ProviderError as exc:
            raise SignInRefused(f"Microsoft refused the sign-in code ({exc})") from None
        except (ValueError, RuntimeError):
            # MSAL found the reply not of this flow (state, nonce): nothing is trusted.
            raise SignInRefused(
                "Microsoft's answer does not belong to this sign-in: start again from calsync"
            ) from None
        except (requests.RequestException, OSError) as exc:
            raise SignInRefused(
                f"Microsoft's token endpoint failed: {type(exc).__name__}", 502
            ) from None
        missing = missing_scopes(redeemed.granted)
        if missing:
            raise SignInRefused(
                "Microsoft did not grant calsync " + " and ".join(missing) + ": sign in again "
                "and accept, or ask your organisation's admin to consent for the app"
            )
        if not any(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)):
            raise SignInRefused(
                "Microsoft gave no refresh token (offline access): sign in again", 502
            )
        email = sign_in_email(redeemed.claims)
        if email is None:
            raise SignInRefused("Microsoft did not tell calsync the account's address", 502)
        credentials = MicrosoftTokenCache(
            cache=str(cache.serialize()),
            home_account_id=redeemed.home_account_id,
            client_id=self.client_id,
        )
        return email, credentials

    def keep(
        self, fresh: StoredCredentials, previous: StoredCredentials | None
    ) -> StoredCredentials:
        # MSAL's cache from a new sign-in is whole (refresh token included): it replaces the
        # old one, whose refresh token may be the one that was refused.
        del previous
        return fresh


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
