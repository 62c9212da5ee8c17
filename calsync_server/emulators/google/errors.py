"""Google's error bodies, byte for byte where the client library and calsync parse them."""

from __future__ import annotations

import json
from typing import Any


class GoogleError(Exception):
    """An API error answered with Google's JSON body: `{"error": {"errors": [...], "code",
    "message"}}`."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        location_type: str | None = None,
        location: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location_type = location_type
        self.location = location
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "domain": self.domain,
            "reason": self.reason,
            "message": self.message,
        }
        if self.location_type is not None:
            item["locationType"] = self.location_type
        if self.location is not None:
            item["location"] = self.location
        error: dict[str, Any] = {"errors": [item], "code": self.code, "message": self.message}
        error.update(self.extra)
        return {"error": error}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()


def not_found() -> GoogleError:
    return GoogleError(404, "notFound", "Not Found")


def deleted() -> GoogleError:
    return GoogleError(410, "deleted", "Resource has been deleted")


def duplicate() -> GoogleError:
    return GoogleError(409, "duplicate", "The requested identifier already exists.")


def condition_not_met() -> GoogleError:
    return GoogleError(
        412,
        "conditionNotMet",
        "Precondition Failed",
        location_type="header",
        location="If-Match",
    )


def invalid(message: str, location: str | None = None) -> GoogleError:
    return GoogleError(
        400,
        "invalid",
        message,
        location_type="parameter" if location else None,
        location=location,
    )


def bad_request(message: str = "Bad Request") -> GoogleError:
    return GoogleError(400, "badRequest", message)


def required(message: str) -> GoogleError:
    return GoogleError(400, "required", message)


def full_sync_required() -> GoogleError:
    # The body calsync keys its full resync on; exact as the handbook gives it.
    return GoogleError(
        410,
        "fullSyncRequired",
        "Sync token is no longer valid, a full sync is required.",
        domain="calendar",
        location_type="parameter",
        location="syncToken",
    )


def writer_access_required() -> GoogleError:
    return GoogleError(
        403, "requiredAccessLevel", "You need to have writer access to this calendar."
    )


def rate_limit_exceeded() -> GoogleError:
    return GoogleError(403, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")


_AUTH_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def login_required() -> GoogleError:
    """No Authorization header at all."""
    return GoogleError(
        401,
        "required",
        "Login Required.",
        location_type="header",
        location="Authorization",
        extra={
            "message": f"Request is missing required authentication credential. {_AUTH_HINT}",
            "status": "UNAUTHENTICATED",
        },
        headers={"www-authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def invalid_credentials() -> GoogleError:
    """A token that is unknown, revoked or expired."""
    return GoogleError(
        401,
        "authError",
        "Invalid Credentials",
        location_type="header",
        location="Authorization",
        extra={
            "message": f"Request had invalid authentication credentials. {_AUTH_HINT}",
            "status": "UNAUTHENTICATED",
        },
        headers={
            "www-authenticate": (
                'Bearer realm="https://accounts.google.com/", error="invalid_token"'
            )
        },
    )


def injected(status: int, reason: str | None) -> GoogleError:
    """A fault asked for through the admin API, shaped like Google's error of that status."""
    defaults = {
        400: ("badRequest", "Bad Request"),
        401: ("authError", "Invalid Credentials"),
        403: ("rateLimitExceeded", "Rate Limit Exceeded"),
        404: ("notFound", "Not Found"),
        409: ("conflict", "Conflict"),
        410: ("fullSyncRequired", "Sync token is no longer valid, a full sync is required."),
        412: ("conditionNotMet", "Precondition Failed"),
        429: ("rateLimitExceeded", "Rate Limit Exceeded"),
        500: ("backendError", "Backend Error"),
        502: ("backendError", "Bad Gateway"),
        503: ("backendError", "Service Unavailable"),
    }
    default_reason, message = defaults.get(status, ("backendError", "Error"))
    reason = reason or default_reason
    if reason == "fullSyncRequired":
        return full_sync_required()
    domain = "usageLimits" if "ateLimit" in reason or reason == "quotaExceeded" else "global"
    return GoogleError(status, reason, message, domain=domain)
