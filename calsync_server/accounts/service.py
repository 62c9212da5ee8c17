"""Users, accounts and their calendar lists: what the API, the CLI and sign-in share."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlmodel import Session, select

from calsync_server.accounts.vault import CredentialVault, StoredCredentials
from calsync_server.db.models import Account, Calendar, User
from calsync_server.providers.base import CalendarProvider
from shared.domain import AccountState, Provider


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
    account.token_expires_at = credentials.expiry
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
    for listed in provider.list_calendars():
        calendar = stored.get(listed.provider_calendar_id)
        if calendar is None:
            calendar = Calendar(
                account_id=account.id, provider_calendar_id=listed.provider_calendar_id, name=""
            )
        calendar.name = listed.name
        calendar.color = listed.color
        calendar.time_zone = listed.time_zone
        calendar.access_role = listed.access_role
        # A calendar the account can only read can never hold busy blocks.
        calendar.read_only = calendar.read_only or not listed.writable
        session.add(calendar)
        result.append(calendar)
    session.flush()
    return result
