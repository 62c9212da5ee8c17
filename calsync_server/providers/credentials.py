"""An account's stored login, as the vault seals it and a provider's factory reads it."""

from __future__ import annotations

from datetime import datetime

import msgspec


class StoredCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """OAuth tokens (Google today); each provider's own module turns them into its client's."""

    access_token: str | None
    refresh_token: str | None
    expiry: datetime | None = None
    client_id: str = "calsync"
    client_secret: str | None = None

    def __repr__(self) -> str:  # never let a token reach a log through a repr
        return f"StoredCredentials(client_id={self.client_id!r}, expiry={self.expiry!r})"
