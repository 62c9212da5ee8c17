"""CalDAV sign-in: a server URL, a user name and a password, checked against the server (its
calendars are listed) before anything is stored, then kept sealed like every login.

There is no redirect and nothing to refresh: a wrong password is said at once, and a 401 later
marks the account needs_reauth (the engine's rule for ErrorKind.AUTH).
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlmodel import Session, select

from calsync_server.accounts.service import (
    SignedIn,
    catch_up,
    connect_account,
    import_calendars,
    resumed,
)
from calsync_server.db.models import Account
from calsync_server.providers.credentials import CalDAVPassword
from calsync_server.providers.model import ErrorKind, ProviderCalendar, ProviderError
from calsync_server.providers.registry import (
    ProviderConfig,
    RefreshesCredentials,
    caldav_provider,
)
from calsync_server.providers.signin import SignInRefused
from shared.domain import Provider

if TYPE_CHECKING:
    from calsync_server.runtime import Runtime

ICLOUD_URL = "https://caldav.icloud.com/"
ICLOUD_PASSWORD_NOTE = (
    "iCloud needs an app-specific password (two-factor authentication must be on): make one "
    "at https://account.apple.com under Sign-In and Security, App-Specific Passwords. It opens "
    "your whole iCloud account (mail, contacts, files too), not only the calendars: revoke it "
    "there when calsync no longer needs it."
)
# A person is waiting: one try, a short wait (a sync later retries with backoff).
CHECK_TIMEOUT = 15.0
LOOPBACK_HOSTS = frozenset({"localhost"})


def checked_url(url: str) -> str:
    """The server URL as calsync keeps it, or SignInRefused saying what is wrong with it. A
    password goes only over HTTPS (plain HTTP only to this machine: a test or a local server)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (a port out of range raises here)
    except ValueError:
        raise SignInRefused(f"the server URL is not a URL: {url!r}") from None
    if parts.scheme not in ("https", "http") or not host:
        raise SignInRefused(f"the server URL must start with https:// and name a host: {url!r}")
    if any(c.isspace() or ord(c) < 32 for c in url) or parts.username or parts.password:
        raise SignInRefused("the server URL must be plain (no spaces, no login inside it)")
    if parts.scheme == "http" and not _loopback(host):
        raise SignInRefused(
            "the server URL must use https://: calsync sends the password only encrypted "
            "(plain http only to this machine)"
        )
    return url if parts.path else url + "/"


def _loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def account_name(url: str, username: str) -> str:
    """The account's name in calsync: the user name where it is an email (iCloud, Fastmail),
    else the user name at the server's host."""
    if "@" in username:
        return username.lower()
    return f"{username}@{urlsplit(url).hostname}".lower()


def _name_on_this_server(
    session: Session, runtime: Runtime, user_id: int, login: CalDAVPassword
) -> str:
    """The account's name: `account_name`, unless the user's account of that name is a login
    to another server (an Apple ID that is also the user name on a Nextcloud): then the name
    with this server's host, so the second server's login never replaces the first's."""
    name = account_name(login.url, login.username)
    for candidate in (name, f"{name} ({urlsplit(login.url).netloc.lower()})"):
        held = session.exec(
            select(Account.credentials_encrypted).where(
                Account.user_id == user_id,
                Account.provider == Provider.CALDAV,
                Account.email == candidate,
            )
        ).first()
        if held is None or _same_server(runtime.vault.open(held), login.url):
            return candidate
    return candidate


def _same_server(stored: object, url: str) -> bool:
    if not isinstance(stored, CalDAVPassword):
        return True  # nothing says otherwise: the account of that name is brought back
    ours, theirs = urlsplit(url), urlsplit(stored.url)
    return (ours.scheme, ours.netloc.lower()) == (theirs.scheme, theirs.netloc.lower())


def check_login(
    login: CalDAVPassword, config: ProviderConfig
) -> tuple[CalDAVPassword, list[ProviderCalendar]]:
    """Blocking. The login with what discovery found (the calendar home, kept so that no
    sync discovers again) and its calendars, or SignInRefused saying whether the password,
    the server or the address is wrong."""
    try:
        with contextlib.closing(caldav_provider(login, config, max_tries=1)) as provider:
            calendars = provider.list_calendars()
            found = (
                provider.credentials_to_store(login)
                if isinstance(provider, RefreshesCredentials)
                else None
            )
    except ProviderError as exc:
        raise _refusal(login.url, exc) from None
    except ValueError as exc:  # the library's own URL checks
        raise SignInRefused(f"the server URL cannot be used: {exc}") from None
    return (found if isinstance(found, CalDAVPassword) else login), calendars


def _refusal(url: str, exc: ProviderError) -> SignInRefused:
    if exc.kind is ErrorKind.AUTH:
        return SignInRefused(
            "the CalDAV server refused the user name or password (wrong password? iCloud needs "
            "an app-specific password, not the Apple ID's own)",
            401,
        )
    if exc.kind is ErrorKind.TRANSIENT:
        return SignInRefused(f"cannot reach the CalDAV server at {url} ({exc.detail})")
    if exc.kind is ErrorKind.FORBIDDEN:
        return SignInRefused(f"the CalDAV server at {url} refused calsync access ({exc.detail})")
    return SignInRefused(f"no CalDAV calendars found at {url} ({exc.detail})")


def connect_caldav(
    runtime: Runtime, user_id: int, url: str, username: str, password: str
) -> SignedIn:
    """Blocking. Check the login, then create the account (or bring the same login back,
    keeping its calendars and settings) and import its calendars with sync off."""
    login = CalDAVPassword(url=checked_url(url), username=username.strip(), password=password)
    if not login.username:
        raise SignInRefused("the user name is empty")
    config = ProviderConfig(runtime.settings.google_api_url, timeout=CHECK_TIMEOUT)
    # Nothing is stored for a login the server refuses; the import below starts from the
    # calendar home found here.
    login, _ = check_login(login, config)
    with Session(runtime.db) as session:
        email = _name_on_this_server(session, runtime, user_id, login)
        reauthorised = (
            session.exec(
                select(Account.id).where(
                    Account.user_id == user_id,
                    Account.provider == Provider.CALDAV,
                    Account.email == email,
                )
            ).first()
            is not None
        )
        account = connect_account(
            session,
            runtime.vault,
            user_id=user_id,
            email=email,
            credentials=login,
            now=runtime.clock.now(),
            provider=Provider.CALDAV,
        )
        try:
            with contextlib.closing(caldav_provider(login, config, max_tries=1)) as provider:
                calendars = import_calendars(session, account, provider)
        except ProviderError as exc:
            session.rollback()
            raise _refusal(login.url, exc) from None
        session.commit()
        assert account.id is not None
        account_id = account.id
        names = [c.name for c in calendars]
        resume = resumed(session, account)  # a new app-specific password, say
    catch_up(runtime, user_id, account_id, resume)
    return SignedIn(account_id, email, reauthorised, names)
