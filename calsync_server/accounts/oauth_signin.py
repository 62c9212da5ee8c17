"""Redirect sign-in (Google, Microsoft), brought back to the calsync server: start a flow,
finish it at the provider's callback.

Pending flows live in the database (`oauth_flow`), not in a signed `state`: what the flow must
remember (a PKCE verifier, MSAL's nonce) must stay on the server (it is what proves the code
was asked for by us), a state must work only once even with several server processes, and
both need a row somewhere anyway. The provider's side (its client, scopes, endpoints, what a
grant covers) is the provider's own `signin` module, reached through the registry; the flow's
state is opaque text to this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete
from sqlmodel import Session, col, select

from calsync_server.accounts.service import (
    SignedIn,
    catch_up,
    connect_account,
    import_calendars,
    resumed,
)
from calsync_server.db.models import Account, OAuthFlow
from calsync_server.providers.model import ProviderError
from calsync_server.providers.registry import GOOGLE, MICROSOFT, ProviderConfig, oauth_sign_in
from calsync_server.providers.signin import OAuthSignIn, SignInRefused, SignInUnavailable
from shared.domain import Provider
from shared.settings import Settings

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime

__all__ = [
    "OAUTH_PROVIDERS",
    "SignInRefused",
    "SignInUnavailable",
    "SignedIn",
    "callback_path",
    "finish_sign_in",
    "redirect_uri",
    "sign_in_of",
    "start_sign_in",
]

# The providers whose accounts are added by a redirect sign-in.
OAUTH_PROVIDERS = (GOOGLE, MICROSOFT)
# Long enough to find the right account and read the consent screen, short enough that a link
# found later in a browser history is useless.
FLOW_LIFETIME = timedelta(minutes=10)
MAX_STATE_LENGTH = 128
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


def callback_path(provider: str) -> str:
    """Where the provider sends the browser back, under the server's root."""
    return f"oauth/{provider}/callback"


def sign_in_of(settings: Settings, provider: str) -> OAuthSignIn:
    """The provider's redirect sign-in as the settings configure it (Google's client kept in
    CALSYNC_HOME, Microsoft's app id and login authority from the settings)."""
    return oauth_sign_in(provider, ProviderConfig.from_settings(settings), settings.home)


def redirect_uri(settings: Settings, provider: str, request_base: str) -> str:
    """The callback's URL: under the public URL when one is set, else under the address the
    request came to (written with the provider's loopback host name where it has one)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/" + callback_path(provider)
    base = request_base
    host = sign_in_of(settings, provider).loopback_host
    parts = urlsplit(request_base)
    if host is not None and parts.hostname in LOOPBACK_ADDRESSES:
        port = f":{parts.port}" if parts.port else ""
        base = urlunsplit((parts.scheme, host + port, parts.path, "", ""))
    return base.rstrip("/") + "/" + callback_path(provider)


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# -- start ----------------------------------------------------------------------------------


def start_sign_in(
    runtime: Runtime, user_id: int, provider: str, redirect_uri: str, login_hint: str | None
) -> tuple[str, str, datetime]:
    """Blocking. The provider's consent URL for `user_id`, the state that will bring it back
    and when the sign-in expires."""
    state = secrets.token_urlsafe(32)
    url, flow_state = sign_in_of(runtime.settings, provider).begin(redirect_uri, state, login_hint)
    now = runtime.clock.now()
    expires_at = now + FLOW_LIFETIME
    with Session(runtime.db) as session:
        # Abandoned sign-ins go as new ones start; nothing else needs them.
        session.execute(delete(OAuthFlow).where(col(OAuthFlow.expires_at) < now))
        session.add(
            OAuthFlow(
                state_hash=state_hash(state),
                user_id=user_id,
                provider=Provider(provider),
                flow_state=flow_state,
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=expires_at,
            )
        )
        session.commit()
    return url, state, expires_at


# -- finish ---------------------------------------------------------------------------------


def _take_flow(runtime: Runtime, provider: str, state: str) -> OAuthFlow:
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
    if pending.provider != provider:
        # Another provider's state on this callback: used up all the same, it was exposed.
        raise SignInRefused("this sign-in is unknown or was already used: start again from calsync")
    if pending.expires_at <= runtime.clock.now():
        raise SignInRefused("this sign-in expired: start again from calsync")
    return pending


def finish_sign_in(runtime: Runtime, provider: str, reply: Mapping[str, str]) -> SignedIn:
    """Blocking. Check the state of the redirect's `reply` (its query parameters), redeem it
    with the flow kept, read the email, then create the account or bring it back
    (re-authorisation keeps its calendars and settings), and import its calendar list with
    sync off."""
    pending = _take_flow(runtime, provider, reply.get("state") or "")
    sign_in = sign_in_of(runtime.settings, provider)
    name = sign_in.display_name
    error = reply.get("error")
    if error:
        said = f"{name} said {error!r}"
        description = reply.get("error_description")
        if description:
            said += f" ({description})"
        raise SignInRefused(f"the sign-in did not happen: {said}")
    if not reply.get("code"):
        raise SignInRefused(f"{name} sent no sign-in code: start again from calsync")
    email, fresh = sign_in.finish(pending.redirect_uri, pending.flow_state, reply)
    with Session(runtime.db) as session:
        existing = session.exec(
            select(Account).where(
                Account.user_id == pending.user_id,
                Account.provider == pending.provider,
                Account.email == email,
            )
        ).first()
        reauthorised = existing is not None
        previous = None
        if existing is not None and existing.credentials_encrypted:
            with contextlib.suppress(ValueError):  # a login sealed with a lost key: a new one
                previous = runtime.vault.open(existing.credentials_encrypted)
        fresh = sign_in.keep(fresh, previous)
        account = connect_account(
            session,
            runtime.vault,
            user_id=pending.user_id,
            email=email,
            credentials=fresh,
            now=runtime.clock.now(),
            provider=pending.provider,
        )
        try:
            with contextlib.closing(
                runtime.provider_factory(account.provider, account.id, fresh)
            ) as opened:
                calendars = import_calendars(session, account, opened)
        except ProviderError as exc:
            session.rollback()
            raise SignInRefused(
                f"signed in, but {name} did not list the calendars ({exc}): try again", 502
            ) from None
        session.commit()
        assert account.id is not None
        account_id = account.id
        names = [c.name for c in calendars]
        resume = resumed(session, account)
    catch_up(runtime, pending.user_id, account_id, resume)
    return SignedIn(account_id, email, reauthorised, names)
