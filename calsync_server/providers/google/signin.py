"""Google's side of sign-in: the OAuth client, the code flow with PKCE, the scopes and what a
grant covers, the email behind it. The accounts code reaches it through the registry and keeps
the pending flows (in the database) itself."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]

from calsync_server.providers.credentials import GoogleOAuth, StoredCredentials
from calsync_server.providers.google.client import SCOPES, token_uri
from calsync_server.providers.google.credentials import from_google
from calsync_server.providers.signin import SignInRefused, SignInUnavailable

CLIENT_FILE = "google-client-secret.json"
EMULATOR_CLIENT_ID = "calsync-emulator"
GOOGLE_API_ROOT = "https://www.googleapis.com"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def auth_uri(root_url: str) -> str:
    if root_url.rstrip("/") == GOOGLE_API_ROOT:
        return GOOGLE_AUTH_URI
    return root_url.rstrip("/") + "/o/oauth2/auth"


def userinfo_uri(root_url: str) -> str:
    # Google serves it under the APIs root too, so one rule fits Google and the emulator.
    return root_url.rstrip("/") + "/oauth2/v3/userinfo"


def _client_section(config: Any) -> dict[str, Any]:
    """The `installed` (desktop) or `web` part of a Google client secrets document."""
    if not isinstance(config, dict):
        raise ValueError("not a Google OAuth client secrets document (a JSON object)")
    for kind in ("installed", "web"):
        section = config.get(kind)
        if isinstance(section, dict):
            for key in ("client_id", "client_secret"):
                if not isinstance(section.get(key), str) or not section[key]:
                    raise ValueError(f"the client secrets file has no {kind}.{key}")
            return section
    raise ValueError(
        "not a Google OAuth client secrets file: it needs an 'installed' (Desktop app) "
        "or 'web' section"
    )


def install_client_secrets(home: Path, source: Path) -> str:
    """Copy a downloaded client_secret.json into CALSYNC_HOME, readable by its owner only.
    Returns the client id."""
    try:
        text = source.read_text()
    except OSError as exc:
        raise ValueError(f"{source}: cannot be read: {exc.strerror}") from None
    try:
        section = _client_section(json.loads(text))
    except json.JSONDecodeError:
        raise ValueError(f"{source}: not JSON") from None
    home.mkdir(parents=True, exist_ok=True)
    target = home / CLIENT_FILE
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    target.chmod(0o600)  # an older copy may have been made with a wider mode
    return str(section["client_id"])


def client_config(home: Path, root_url: str) -> dict[str, Any]:
    """The client secrets document sign-in uses, endpoints pointed at the configured root.

    Against the emulator (any root but Google's) a built-in client is used when none was
    installed: the emulator accepts any client id."""
    real_google = root_url.rstrip("/") == GOOGLE_API_ROOT
    path = home / CLIENT_FILE
    section: dict[str, Any]
    if path.exists():
        try:
            section = dict(_client_section(json.loads(path.read_text())))
        except (ValueError, OSError) as exc:
            raise SignInUnavailable(f"{path}: {exc}") from None
    elif not real_google:
        section = {"client_id": EMULATOR_CLIENT_ID, "client_secret": "calsync-emulator-secret"}
    else:
        raise SignInUnavailable(
            "no Google OAuth client is configured: create one (README, 'Accounts') and run "
            "`calsync accounts add google --client-secrets client_secret.json`"
        )
    if not real_google or "auth_uri" not in section:
        section["auth_uri"] = auth_uri(root_url)
        section["token_uri"] = token_uri(root_url)
    return {"installed": section}


def _flow(
    config: dict[str, Any], redirect_uri: str, verifier: str | None, *, asking: bool = True
) -> Flow:
    # The exchange carries no scopes: oauthlib would then compare the granted scope string
    # with the asked one and raise "Scope has changed" for a wider grant or a short form
    # (`email`); `granted_gaps` judges what the grant covers instead.
    return Flow.from_client_config(
        config,
        scopes=list(SCOPES) if asking else None,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        autogenerate_code_verifier=verifier is None,
    )


# oauthlib refuses plain-http endpoints through a process-wide switch; it is turned on only
# around one exchange with an emulator on this machine, never for anything else.
_insecure_lock = threading.Lock()


@contextlib.contextmanager
def _allow_loopback_http(url: str) -> Iterator[None]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        yield
        return
    with _insecure_lock:
        before = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
            else:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


# -- what a grant covers ----------------------------------------------------------------------

GOOGLE_SCOPE_ROOT = "https://www.googleapis.com/auth/"
# Google's short spellings (the token answer may use either).
SHORT_SCOPES = {
    "email": GOOGLE_SCOPE_ROOT + "userinfo.email",
    "profile": GOOGLE_SCOPE_ROOT + "userinfo.profile",
}
# Each permission calsync needs, the granted scopes that include it, and what it is for
# (the words of Google's consent screen, so the person recognises the box they unticked).
# `openid` is asked for but not needed: the email comes from the userinfo endpoint.
NEEDED: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        GOOGLE_SCOPE_ROOT + "calendar.events",
        frozenset({"calendar.events", "calendar"}),
        "view and edit events on all your calendars",
    ),
    (
        GOOGLE_SCOPE_ROOT + "calendar.calendarlist.readonly",
        frozenset(
            {
                "calendar.calendarlist.readonly",
                "calendar.calendarlist",
                "calendar.readonly",
                "calendar",
            }
        ),
        "see the list of calendars you are subscribed to",
    ),
    (
        GOOGLE_SCOPE_ROOT + "userinfo.email",
        frozenset({"userinfo.email"}),
        "see your primary Google Account email address",
    ),
)


def _scope_name(scope: str) -> str:
    """`https://www.googleapis.com/auth/calendar.events` and `email` as one vocabulary:
    the part after Google's root (`calendar.events`, `userinfo.email`)."""
    full = SHORT_SCOPES.get(scope, scope)
    return full.removeprefix(GOOGLE_SCOPE_ROOT).rstrip("/")


def granted_gaps(granted: str | list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """The permissions calsync needs that `granted` (the token answer's scope, a string or
    oauthlib's list) does not cover, as (scope, what it allows). A wider scope covers the
    narrower ones (`calendar` covers `calendar.events`); order and spelling do not matter."""
    scopes = granted.split() if isinstance(granted, str) else list(granted)
    have = {_scope_name(s) for s in scopes}
    return [(scope, what) for scope, coverers, what in NEEDED if not have & coverers]


# -- the sign-in, as the accounts code asks for it ---------------------------------------------


class GoogleSignIn:
    """Google's OAuthSignIn: the client from CALSYNC_HOME (or the emulator's built-in one),
    endpoints under the configured API root."""

    client_file = CLIENT_FILE
    display_name = "Google"
    # Google's desktop clients take any loopback address and port.
    loopback_host: str | None = None

    def __init__(self, home: Path, root_url: str) -> None:
        self.home = home
        self.root_url = root_url

    def install_client(self, source: Path) -> str:
        return install_client_secrets(self.home, source)

    def begin(self, redirect_uri: str, state: str, login_hint: str | None) -> tuple[str, str]:
        """The consent URL; the flow state kept is the PKCE verifier alone."""
        config = client_config(self.home, self.root_url)
        flow = _flow(config, redirect_uri, None)
        extra: dict[str, str] = {}
        if login_hint:
            extra["login_hint"] = login_hint
        # offline + consent: Google hands out a refresh token every time, re-authorisation too.
        with _allow_loopback_http(config["installed"]["auth_uri"]):
            url, _ = flow.authorization_url(
                state=state, access_type="offline", prompt="consent", **extra
            )
        assert flow.code_verifier is not None
        return str(url), flow.code_verifier

    def finish(
        self, redirect_uri: str, flow_state: str, reply: Mapping[str, str]
    ) -> tuple[str, StoredCredentials]:
        fresh = self._exchange(
            client_config(self.home, self.root_url), redirect_uri, flow_state, reply.get("code", "")
        )
        return self._email(fresh.access_token), fresh

    def keep(
        self, fresh: StoredCredentials, previous: StoredCredentials | None
    ) -> StoredCredentials:
        assert isinstance(fresh, GoogleOAuth)
        if fresh.refresh_token is None and isinstance(previous, GoogleOAuth):
            # Google may skip the refresh token when the grant already had one: keep it.
            fresh = GoogleOAuth(
                access_token=fresh.access_token,
                refresh_token=previous.refresh_token,
                expiry=fresh.expiry,
                client_id=fresh.client_id,
                client_secret=fresh.client_secret,
            )
        if fresh.refresh_token is None:
            raise SignInRefused(
                "Google gave no refresh token: remove calsync's access at "
                "https://myaccount.google.com/permissions and sign in again"
            )
        return fresh

    @staticmethod
    def _exchange(
        config: dict[str, Any], redirect_uri: str, verifier: str, code: str
    ) -> GoogleOAuth:
        flow = _flow(config, redirect_uri, verifier, asking=False)
        section = config["installed"]
        try:
            with _allow_loopback_http(section["token_uri"]):
                token = flow.fetch_token(code=code)
        except OAuth2Error as exc:
            raise SignInRefused(f"Google refused the sign-in code ({exc.error})") from None
        except (OSError, ValueError) as exc:
            raise SignInRefused(
                f"Google's token endpoint failed: {type(exc).__name__}", 502
            ) from None
        # No `scope` in the answer means the grant is what was asked (RFC 6749, 5.1).
        gaps = granted_gaps(token.get("scope") or SCOPES)
        if gaps:
            raise SignInRefused(
                "Google did not grant calsync permission to "
                + " or to ".join(f"{what} ({scope})" for scope, what in gaps)
                + ": sign in again and leave that box ticked on Google's consent screen"
            )
        return from_google(flow.credentials, str(section["client_id"]))

    def _email(self, access_token: str | None) -> str:
        try:
            answer = httpx.get(
                userinfo_uri(self.root_url),
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=15,
            )
        except httpx.HTTPError as exc:
            raise SignInRefused(f"Google's user info failed: {type(exc).__name__}", 502) from None
        if answer.status_code != 200:
            raise SignInRefused(f"Google's user info answered {answer.status_code}", 502)
        info = answer.json()
        email = info.get("email") if isinstance(info, dict) else None
        if not isinstance(email, str) or "@" not in email:
            raise SignInRefused("Google did not tell calsync the account's email address", 502)
        return email.lower()
