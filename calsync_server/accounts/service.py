"""Users, accounts and their calendar lists: what the API, the CLI and sign-in share."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from calsync_server.accounts.vault import CredentialVault, StoredCredentials
from calsync_server.db.models import Account, Calendar, User
from calsync_server.live import LiveUpdate
from calsync_server.providers.credentials import expiry_of
from calsync_server.providers.model import Provider as CalendarProvider
from calsync_server.providers.registry import KnowsOwner
from shared.domain import AccountState, Provider, SyncKind

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_user(session: Session, name: str, api_token: str, now: datetime) -> User:
    """The user whose API token is `api_token`, created on first use."""
    digest = token_hash(api_token)
    user = session.exec(select(User).where(User.api_token_hash == digest)).first()
    if user is None:
        user = User(name=name, api_token_hash=digest, created_at=now)
        session.add(user)
        session.flush()
    return user


def connect_account(
    session: Session,
    vault: CredentialVault,
    *,
    user_id: int,
    email: str,
    credentials: StoredCredentials,
    now: datetime,
    provider: Provider = Provider.GOOGLE,
) -> Account:
    """Create the account, or bring an existing one back (re-authorisation keeps its calendars)."""
    account = session.exec(
        select(Account).where(
            Account.user_id == user_id, Account.provider == provider, Account.email == email
        )
    ).first()
    if account is None:
        account = Account(user_id=user_id, provider=provider, email=email, created_at=now)
    account.credentials_encrypted = vault.seal(credentials)
    account.token_expires_at = expiry_of(credentials)
    account.authorized_at = now
    account.state = AccountState.ACTIVE
    session.add(account)
    session.flush()
    return account


def import_calendars(
    session: Session, account: Account, provider: CalendarProvider
) -> list[Calendar]:
    """Bring the provider's calendar list in; new calendars arrive with sync off (seed rule)."""
    assert account.id is not None
    stored = {
        c.provider_calendar_id: c
        for c in session.exec(select(Calendar).where(Calendar.account_id == account.id))
    }
    result: list[Calendar] = []
    if isinstance(provider, KnowsOwner):
        # Sign-in is when who the owner is gets asked (the "already there" rule's addresses).
        note_owner(account, provider.owner_addresses())
    for listed in provider.list_calendars():
        calendar = stored.get(listed.id)
        if calendar is None:
            calendar = Calendar(account_id=account.id, provider_calendar_id=listed.id, name="")
        calendar.name = listed.name
        calendar.color = listed.color
        calendar.time_zone = listed.time_zone
        calendar.access_role = listed.access_role or ("writer" if listed.writable else "reader")
        # A calendar the account can only read can never hold busy blocks.
        calendar.read_only = calendar.read_only or not listed.writable
        session.add(calendar)
        result.append(calendar)
    session.flush()
    return result


def note_owner(account: Account, addresses: frozenset[str]) -> bool:
    """Keep the addresses a provider knows the account's owner by (with the account's email);
    whether the row changed."""
    found = sorted({a.strip().lower() for a in addresses} | {account.email.strip().lower()})
    if account.addresses == found:
        return False
    account.addresses = found
    return True


DEFAULT_USER = "default"
TOKEN_FILE = "api-token"


def default_api_token(home: Path, configured: str | None) -> str:
    """The default user's API token: CALSYNC_API_TOKEN, else the one made on first run (0600)."""
    if configured:
        return configured
    path = home / TOKEN_FILE
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # Written whole under another name with its final mode, then linked into place: the token
    # is never readable by others, and of two processes starting together one token wins.
    draft = home / f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        token = path.read_text().strip()
    finally:
        draft.unlink()
    return token


def ensure_default_user(session: Session, api_token: str, now: datetime) -> User:
    """The default user, holding `api_token`; a changed CALSYNC_API_TOKEN re-keys it, so its
    accounts and calendars stay with it."""
    digest = token_hash(api_token)
    holder = session.exec(select(User).where(User.api_token_hash == digest)).first()
    if holder is not None:
        return holder
    default = session.exec(select(User).where(User.name == DEFAULT_USER)).first()
    if default is None:
        return ensure_user(session, DEFAULT_USER, api_token, now)
    default.api_token_hash = digest
    session.add(default)
    session.flush()
    return default


def user_for_token(session: Session, api_token: str) -> User | None:
    return session.exec(select(User).where(User.api_token_hash == token_hash(api_token))).first()


# -- after a sign-in (every provider) ----------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    account_id: int
    email: str
    reauthorised: bool
    calendars: list[str] = field(default_factory=list)


def resumed(session: Session, account: Account) -> list[int]:
    """The calendars a login brought back resumes: those with sync on, if the account is active."""
    if account.state != AccountState.ACTIVE:
        return []
    enabled = select(Calendar).where(
        Calendar.account_id == account.id, col(Calendar.sync_enabled).is_(True)
    )
    return [c.id for c in session.exec(enabled) if c.id is not None]


def catch_up(runtime: Runtime, user_id: int, account_id: int, resume: list[int]) -> None:
    """A login brought back picks up where it stopped, with a full pass of each calendar it
    syncs; the dashboard hears of the account either way."""
    for calendar_id in resume:
        runtime.enqueue(calendar_id, SyncKind.MANUAL, full=True)
    runtime.bus.publish(LiveUpdate(user_id, "changed", {"account_id": account_id}))
