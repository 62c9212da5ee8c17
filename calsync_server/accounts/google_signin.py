"""Google sign-in, redirected to the calsync server: start a flow, finish it at the callback.

Pending flows live in the database (`oauth_flow`), not in a signed `state`: the PKCE verifier
must stay on the server (it is what proves the code was asked for by us), a state must work
only once even with several server processes, and both need a row somewhere anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]
from sqlalchemy import delete
from sqlmodel import Session, col, select

from calsync_server.accounts.service import connect_account, import_calendars
from calsync_server.accounts.vault import StoredCredentials
from calsync_server.db.models import Account, Calendar, OAuthFlow
from calsync_server.live import LiveUpdate
from calsync_server.providers.google import SCOPES, token_uri
from calsync_server.providers.google.credentials import from_google
from calsync_server.providers.model import ProviderError
from shared.domain import AccountState, Provider, SyncKind
from shared.settings import Settings

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime

CLIENT_FILE = "google-client-secret.json"
EMULATOR_CLIENT_ID = "calsync-emulator"
CALLBACK_PATH = "oauth/google/callback"
# Long enough to find the right Google account and read the consent screen, short enough that
# a link found later in a browser history is useless.
FLOW_LIFETIME = timedelta(minutes=10)
MAX_STATE_LENGTH = 128
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SignInUnavailable(Exception):
    """Sign-in cannot start: no OAuth client is configured (real Google)."""


class SignInRefused(Exception):
    """The callback cannot finish a sign-in; the message is for the person in the browser."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SignedIn:
    account_id: int
    email: str
    reauthorised: bool
    calendars: list[str] = field(default_factory=list)


# -- the OAuth client ----------------------------------------------------------------------


def auth_uri(root_url: str) -> str:
    if root_url.rstrip("/") == "https://www.googleapis.com":
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


def client_config(settings: Settings) -> dict[str, Any]:
    """The client secrets document sign-in uses, endpoints pointed at the configured root.

    Against the emulator (any root but Google's) a built-in client is used when none was
    installed: the emulator accepts any client id."""
    path = settings.home / CLIENT_FILE
    section: dict[str, Any]
    if path.exists():
        try:
            section = dict(_client_section(json.loads(path.read_text())))
        except (ValueError, OSError) as exc:
            raise SignInUnavailable(f"{path}: {exc}") from None
    elif not settings.uses_real_google:
        section = {"client_id": EMULATOR_CLIENT_ID, "client_secret": "calsync-emulator-secret"}
    else:
        raise SignInUnavailable(
            "no Google OAuth client is configured: create one (README, 'Accounts') and run "
            "`calsync accounts add google --client-secrets client_secret.json`"
        )
    if not settings.uses_real_google or "auth_uri" not in section:
        section["auth_uri"] = auth_uri(settings.google_api_url)
        section["token_uri"] = token_uri(settings.google_api_url)
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


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# -- start ----------------------------------------------------------------------------------


def start_sign_in(
    runtime: Runtime, user_id: int, redirect_uri: str, login_hint: str | None
) -> tuple[str, str, datetime]:
    """Blocking. A Google consent URL for `user_id`, and the state that will bring it back."""
    config = client_config(runtime.settings)
    flow = _flow(config, redirect_uri, None)
    state = secrets.token_urlsafe(32)
    extra: dict[str, str] = {}
    if login_hint:
        extra["login_hint"] = login_hint
    # offline + consent: Google hands out a refresh token every time, re-authorisation included.
    with _allow_loopback_http(config["installed"]["auth_uri"]):
        url, _ = flow.authorization_url(
            state=state, access_type="offline", prompt="consent", **extra
        )
    now = runtime.clock.now()
    expires_at = now + FLOW_LIFETIME
    assert flow.code_verifier is not None
    with Session(runtime.db) as session:
        # Abandoned sign-ins go as new ones start; nothing else needs them.
        session.execute(delete(OAuthFlow).where(col(OAuthFlow.expires_at) < now))
        session.add(
            OAuthFlow(
                state_hash=state_hash(state),
                user_id=user_id,
                provider=Provider.GOOGLE,
                code_verifier=flow.code_verifier,
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=expires_at,
            )
        )
        session.commit()
    return str(url), state, expires_at


# -- finish ---------------------------------------------------------------------------------


def _take_flow(runtime: Runtime, state: str) -> OAuthFlow:
    """The pending flow `state` names, removed so that it can never be used again."""
    if not state or len(state) > MAX_STATE_LENGTH:
        raise SignInRefused("this sign-in link is not valid: start again from calsync")
    digest = state_hash(state)
    with Session(runtime.db, expire_on_commit=False) as session:
        pending = session.get(OAuthFlow, digest)
        if pending is None:
            raise SignInRefused(
                "this sign-in is unknown or was already used: start again from calsync"
            )
        taken = session.execute(delete(OAuthFlow).where(col(OAuthFlow.state_hash) == digest))
        session.commit()
    if getattr(taken, "rowcount", 1) != 1:  # another request used it in between
        raise SignInRefused("this sign-in was already used: start again from calsync")
    if pending.expires_at <= runtime.clock.now():
        raise SignInRefused("this sign-in expired: start again from calsync")
    return pending


def _exchange(config: dict[str, Any], pending: OAuthFlow, code: str) -> StoredCredentials:
    flow = _flow(config, pending.redirect_uri, pending.code_verifier, asking=False)
    section = config["installed"]
    try:
        with _allow_loopback_http(section["token_uri"]):
            token = flow.fetch_token(code=code)
    except OAuth2Error as exc:
        raise SignInRefused(f"Google refused the sign-in code ({exc.error})") from None
    except (OSError, ValueError) as exc:
        raise SignInRefused(f"Google's token endpoint failed: {type(exc).__name__}", 502) from None
    # No `scope` in the answer means the grant is what was asked (RFC 6749, 5.1).
    gaps = granted_gaps(token.get("scope") or SCOPES)
    if gaps:
        raise SignInRefused(
            "Google did not grant calsync permission to "
            + " or to ".join(f"{what} ({scope})" for scope, what in gaps)
            + ": sign in again and leave that box ticked on Google's consent screen"
        )
    return from_google(flow.credentials, str(section["client_id"]))


def _email(root_url: str, access_token: str | None) -> str:
    try:
        answer = httpx.get(
            userinfo_uri(root_url),
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


def finish_sign_in(
    runtime: Runtime, state: str, code: str | None, error: str | None = None
) -> SignedIn:
    """Blocking. Check the state, exchange the code (PKCE), read the email, then create the
    account or bring it back (re-authorisation keeps its calendars and settings), and import
    its calendar list with sync off."""
    pending = _take_flow(runtime, state)
    if error:
        raise SignInRefused(f"the sign-in did not happen: Google said {error!r}")
    if not code:
        raise SignInRefused("Google sent no sign-in code: start again from calsync")
    settings = runtime.settings
    config = client_config(settings)
    fresh = _exchange(config, pending, code)
    email = _email(settings.google_api_url, fresh.access_token)
    with Session(runtime.db) as session:
        existing = session.exec(
            select(Account).where(
                Account.user_id == pending.user_id,
                Account.provider == Provider.GOOGLE,
                Account.email == email,
            )
        ).first()
        reauthorised = existing is not None
        if fresh.refresh_token is None and existing and existing.credentials_encrypted:
            # Google may skip the refresh token when the grant already had one: keep it.
            kept = runtime.vault.open(existing.credentials_encrypted)
            fresh = StoredCredentials(
                access_token=fresh.access_token,
                refresh_token=kept.refresh_token,
                expiry=fresh.expiry,
                client_id=fresh.client_id,
                client_secret=fresh.client_secret,
            )
        if fresh.refresh_token is None:
            raise SignInRefused(
                "Google gave no refresh token: remove calsync's access at "
                "https://myaccount.google.com/permissions and sign in again"
            )
        account = connect_account(
            session,
            runtime.vault,
            user_id=pending.user_id,
            email=email,
            credentials=fresh,
            now=runtime.clock.now(),
        )
        try:
            with contextlib.closing(
                runtime.provider_factory(account.provider, account.id, fresh)
            ) as provider:
                calendars = import_calendars(session, account, provider)
        except ProviderError as exc:
            session.rollback()
            raise SignInRefused(
                f"signed in, but Google did not list the calendars ({exc}): try again", 502
            ) from None
        session.commit()
        assert account.id is not None
        account_id = account.id
        names = [c.name for c in calendars]
        resume = [
            c.id
            for c in session.exec(
                select(Calendar).where(
                    Calendar.account_id == account_id, col(Calendar.sync_enabled).is_(True)
                )
            )
            if c.id is not None
        ]
        active = account.state == AccountState.ACTIVE
    if active:
        # A re-authorised account picks up where it stopped, with a full pass to catch up.
        for calendar_id in resume:
            runtime.enqueue(calendar_id, SyncKind.MANUAL, full=True)
    runtime.bus.publish(LiveUpdate(pending.user_id, "changed", {"account_id": account_id}))
    return SignedIn(account_id, email, reauthorised, names)
