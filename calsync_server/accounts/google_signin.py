"""Google sign-in, redirected to the calsync server: start a flow, finish it at the callback.

Pending flows live in the database (`oauth_flow`), not in a signed `state`: the PKCE verifier
must stay on the server (it is what proves the code was asked for by us), a state must work
only once even with several server processes, and both need a row somewhere anyway. Google's
side (its OAuth client, scopes, endpoints, what a grant covers) is the provider's
(`providers/google/signin.py`), reached through the registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

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
from calsync_server.providers.registry import GOOGLE, ProviderConfig, oauth_sign_in
from calsync_server.providers.signin import OAuthSignIn, SignInRefused, SignInUnavailable
from shared.domain import Provider
from shared.settings import Settings

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime

__all__ = [
    "CALLBACK_PATH",
    "SignInRefused",
    "SignInUnavailable",
    "SignedIn",
    "finish_sign_in",
    "google_sign_in",
    "start_sign_in",
]

CALLBACK_PATH = "oauth/google/callback"
# Long enough to find the right Google account and read the consent screen, short enough that
# a link found later in a browser history is useless.
FLOW_LIFETIME = timedelta(minutes=10)
MAX_STATE_LENGTH = 128


def google_sign_in(settings: Settings) -> OAuthSignIn:
    """Google's sign-in, its client kept in CALSYNC_HOME, its endpoints under the API root."""
    return oauth_sign_in(GOOGLE, ProviderConfig(settings.google_api_url), settings.home)


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# -- start ----------------------------------------------------------------------------------


def start_sign_in(
    runtime: Runtime, user_id: int, redirect_uri: str, login_hint: str | None
) -> tuple[str, str, datetime]:
    """Blocking. A Google consent URL for `user_id`, and the state that will bring it back."""
    state = secrets.token_urlsafe(32)
    url, verifier = google_sign_in(runtime.settings).begin(redirect_uri, state, login_hint)
    now = runtime.clock.now()
    expires_at = now + FLOW_LIFETIME
    with Session(runtime.db) as session:
        # Abandoned sign-ins go as new ones start; nothing else needs them.
        session.execute(delete(OAuthFlow).where(col(OAuthFlow.expires_at) < now))
        session.add(
            OAuthFlow(
                state_hash=state_hash(state),
                user_id=user_id,
                provider=Provider.GOOGLE,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=expires_at,
            )
        )
        session.commit()
    return url, state, expires_at


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
    google = google_sign_in(runtime.settings)
    email, fresh = google.finish(pending.redirect_uri, pending.code_verifier, code)
    with Session(runtime.db) as session:
        existing = session.exec(
            select(Account).where(
                Account.user_id == pending.user_id,
                Account.provider == Provider.GOOGLE,
                Account.email == email,
            )
        ).first()
        reauthorised = existing is not None
        previous = None
        if existing is not None and existing.credentials_encrypted:
            with contextlib.suppress(ValueError):  # a login sealed with a lost key: a new one
                previous = runtime.vault.open(existing.credentials_encrypted)
        fresh = google.keep(fresh, previous)
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
        resume = resumed(session, account)
    catch_up(runtime, pending.user_id, account_id, resume)
    return SignedIn(account_id, email, reauthorised, names)
