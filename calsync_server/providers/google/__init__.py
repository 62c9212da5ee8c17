"""Google Calendar: the client (Google's calls), the mapping (Google's JSON <-> calsync's types)
and the provider that speaks calsync's protocol."""

from calsync_server.providers.google.client import (
    BATCH_SIZE,
    SCOPES,
    GoogleCalendarProvider,
    calendar_discovery,
    provider_error,
    revoke_uri,
    token_uri,
)
from calsync_server.providers.retry import RetryPolicy

__all__ = [
    "BATCH_SIZE",
    "SCOPES",
    "GoogleCalendarProvider",
    "RetryPolicy",
    "calendar_discovery",
    "provider_error",
    "revoke_uri",
    "token_uri",
]
