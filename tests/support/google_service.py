"""Build a real google-api-python-client Calendar service pointed at an emulator (or Google)."""

from __future__ import annotations

from typing import Any

import google.oauth2.credentials
from googleapiclient.discovery import build_from_document

from calsync_server.providers.google import calendar_discovery


def calendar_service(
    root_url: str,
    access_token: str | None = None,
    *,
    credentials: Any = None,
) -> Any:
    """A Calendar v3 service talking to `root_url` with a bearer `access_token`, or with
    `credentials` (e.g. refreshable `google.oauth2.credentials.Credentials` whose `token_uri`
    is the emulator's `/token`)."""
    if credentials is None:
        if access_token is None:
            raise ValueError("give an access_token or credentials")
        credentials = google.oauth2.credentials.Credentials(token=access_token)  # type: ignore[no-untyped-call]
    service = build_from_document(calendar_discovery(root_url), credentials=credentials)
    # The library builds the events resource, every method's documentation included, afresh
    # on each `service.events()` (about 7 ms): tests and the demo call it per event.
    events = service.events()
    service.events = lambda: events
    return service
