"""An account's stored login, as the vault seals it and a provider's factory reads it.

A tagged union, one shape per kind of login: Google OAuth tokens, a CalDAV password login and
Microsoft's token cache. The tag (``kind``) is written with every sealed login; a login sealed
before the union existed has none and is Google OAuth (``decode`` reads it as such). No repr
shows a secret: a login never reaches a log through one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


class GoogleOAuth(msgspec.Struct, frozen=True, kw_only=True, tag="google", tag_field="kind"):
    """OAuth tokens; the Google provider turns them into google-auth's Credentials."""

    access_token: str | None
    refresh_token: str | None
    expiry: datetime | None = None
    client_id: str = "calsync"
    client_secret: str | None = None

    def __repr__(self) -> str:
        return f"GoogleOAuth(client_id={self.client_id!r}, expiry={self.expiry!r})"


class CalDAVPassword(msgspec.Struct, frozen=True, kw_only=True, tag="caldav", tag_field="kind"):
    """A CalDAV login (an app-specific password for iCloud). What discovery found at sign-in
    is kept with it (the calendar home, on iCloud's partition host; the principal and its
    addresses, which an invitation's answer is read by), so no sync discovers again; a login
    kept without them discovers once and is stored back with them."""

    url: str
    username: str
    password: str
    calendar_home: str | None = None
    principal: str | None = None
    addresses: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"CalDAVPassword(url={self.url!r}, username={self.username!r})"


class MicrosoftTokenCache(
    msgspec.Struct, frozen=True, kw_only=True, tag="microsoft", tag_field="kind"
):
    """MSAL's serialized token cache and the account in it (``home_account_id``): MSAL
    refreshes from the cache itself, so the cache is what is sealed back."""

    cache: str
    home_account_id: str
    client_id: str | None = None

    def __repr__(self) -> str:
        return f"MicrosoftTokenCache(home_account_id={self.home_account_id!r})"


StoredCredentials = GoogleOAuth | CalDAVPassword | MicrosoftTokenCache


def encode(credentials: StoredCredentials) -> bytes:
    return msgspec.json.encode(credentials)


def decode(raw: bytes) -> StoredCredentials:
    """A sealed login's plaintext back as its shape; one without a tag is Google OAuth (what
    calsync sealed before the union), read with today's fields."""
    shape = msgspec.json.decode(raw)
    if isinstance(shape, dict) and "kind" not in shape:
        return msgspec.json.decode(raw, type=GoogleOAuth)
    return msgspec.json.decode(raw, type=StoredCredentials)


def revocable_token(credentials: StoredCredentials) -> str | None:
    """The token a provider's revoke endpoint takes (the refresh token, so every access token
    dies too); None for a login with nothing to revoke (a password)."""
    if isinstance(credentials, GoogleOAuth):
        return credentials.refresh_token or credentials.access_token
    return None


def expiry_of(credentials: StoredCredentials) -> datetime | None:
    """When the login's access token ends (None: a password, or not known)."""
    if isinstance(credentials, GoogleOAuth):
        return credentials.expiry
    if isinstance(credentials, MicrosoftTokenCache):
        return _cache_expiry(credentials)
    return None


def _cache_expiry(credentials: MicrosoftTokenCache) -> datetime | None:
    """The latest end of the account's access tokens in MSAL's serialized cache
    (`AccessToken` entries, `expires_on` in epoch seconds, as MSAL writes them)."""
    try:
        cache = msgspec.json.decode(credentials.cache)
    except msgspec.DecodeError:
        return None
    tokens = cache.get("AccessToken") if isinstance(cache, dict) else None
    ends = [
        int(token["expires_on"])
        for token in (tokens or {}).values()
        if isinstance(token, dict)
        and token.get("home_account_id") == credentials.home_account_id
        and str(token.get("expires_on", "")).isdigit()
    ]
    return datetime.fromtimestamp(max(ends), UTC) if ends else None
