"""calsync's stored tokens <-> google-auth's Credentials, pointed at the configured Google root."""

from __future__ import annotations

from datetime import UTC

from google.oauth2.credentials import Credentials

from calsync_server.providers.credentials import GoogleOAuth
from calsync_server.providers.google.client import SCOPES, token_uri


def to_google(stored: GoogleOAuth, root_url: str) -> Credentials:
    # Built directly: from_authorized_user_info would force Google's own token_uri.
    expiry = stored.expiry.replace(tzinfo=None) if stored.expiry else None  # google-auth: naive UTC
    return Credentials(  # type: ignore[no-untyped-call]
        token=stored.access_token,
        refresh_token=stored.refresh_token,
        token_uri=token_uri(root_url),
        client_id=stored.client_id,
        client_secret=stored.client_secret,
        scopes=list(SCOPES),
        expiry=expiry,
    )


def from_google(credentials: Credentials, client_id: str) -> GoogleOAuth:
    expiry = credentials.expiry
    return GoogleOAuth(
        access_token=credentials.token,
        refresh_token=credentials.refresh_token,
        expiry=expiry.replace(tzinfo=UTC) if expiry else None,
        client_id=client_id,
        client_secret=credentials.client_secret,
    )
