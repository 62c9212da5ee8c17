"""Build a real google-api-python-client Calendar service pointed at an emulator (or Google)."""

from __future__ import annotations

import json
from typing import Any

import google.oauth2.credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc

GOOGLE_ROOT = "https://www.googleapis.com/"


def calendar_document(root_url: str) -> dict[str, Any]:
    """The Calendar v3 discovery document shipped with the library, with `rootUrl` replaced,
    so plain calls and `new_batch_http_request()` both go to `root_url`."""
    document = get_static_doc("calendar", "v3")
    if document is None:
        raise RuntimeError("google-api-python-client has no static Calendar v3 document")
    parsed: dict[str, Any] = json.loads(document)
    parsed["rootUrl"] = root_url if root_url.endswith("/") else root_url + "/"
    return parsed


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
    return build_from_document(calendar_document(root_url), credentials=credentials)
