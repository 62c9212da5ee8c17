"""Graph's error bodies: `{"error": {"code", "message", "innerError": {...}}}` with its codes."""

from __future__ import annotations

import json
from typing import Any


class GraphError(Exception):
    """A Graph API error; `innerError` (date, request ids) is filled in when it is answered."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self, date: str, request_id: str, client_request_id: str) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }

    def body_bytes(self, date: str, request_id: str, client_request_id: str) -> bytes:
        return json.dumps(self.body(date, request_id, client_request_id)).encode()


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def invalid_property(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidProperty", message)


def access_denied() -> GraphError:
    return GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def change_key_mismatch() -> GraphError:
    return GraphError(
        412,
        "ErrorIrresolvableConflict",
        "The change key passed in the request does not match the current change key for the item.",
    )


def window_required() -> GraphError:
    return GraphError(
        400,
        "ErrorInvalidParameter",
        "This request requires a time window specified by the query string parameters "
        "StartDateTime and EndDateTime.",
    )


def sync_state_not_found(status: int = 410) -> GraphError:
    return GraphError(
        status,
        "syncStateNotFound",
        "The sync state generation is not found or has expired: start a new round.",
    )


def invalid_delta_token() -> GraphError:
    return GraphError(400, "InvalidDeltaToken", "The delta token is malformed or unknown.")


def throttled(retry_after_s: int, limit: str) -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        f"Application is over its {limit} limit.",
        headers={"retry-after": str(retry_after_s)},
    )


def unauthenticated(message: str = "Access token is empty.") -> GraphError:
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={"www-authenticate": 'Bearer realm="", error="invalid_token"'},
    )


def injected(status: int, code: str | None, retry_after_s: int | None = None) -> GraphError:
    """A fault asked for through the admin API, shaped like Graph's error of that status; a
    429 or 503 says Retry-After (the fault's own, else 1 s), as Graph's do."""
    defaults = {
        400: ("BadRequest", "Bad request."),
        401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
        403: ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
        404: ("ErrorItemNotFound", "The specified object was not found in the store."),
        409: ("ErrorIrresolvableConflict", "Conflict."),
        410: ("syncStateNotFound", "The sync state generation is not found."),
        412: ("ErrorIrresolvableConflict", "The change key does not match."),
        429: ("ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
        500: ("ErrorInternalServerError", "An internal server error occurred."),
        502: ("BadGateway", "Bad gateway."),
        503: ("ServiceUnavailable", "Service unavailable."),
        504: ("GatewayTimeout", "Gateway timeout."),
    }
    default_code, message = defaults.get(status, ("UnknownError", "Error."))
    headers: dict[str, str] = {}
    if status in (429, 503) or retry_after_s is not None:
        headers["retry-after"] = str(1 if retry_after_s is None else retry_after_s)
    return GraphError(status, code or default_code, message, headers)
