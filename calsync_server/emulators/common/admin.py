"""The admin API's shared logic: its error, field checks, and fault rules from a JSON body."""

from __future__ import annotations

from typing import Any

from calsync_server.emulators.common.faults import Fault, Faults


class AdminError(Exception):
    """A bad admin request: answered 400 (or `status`) with `{"error": message}`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError("the body must be a JSON object")
    return body


def string_field(value: Any, name: str, *, required: bool = True) -> str | None:
    """A non-empty string, stripped; None when absent and not `required`."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AdminError(f"'{name}' must be a non-empty string")
    return value.strip()


def _is_count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def add_fault(faults: Faults, body: Any) -> dict[str, Any]:
    """A fault rule: `method` is the emulated API's operation name (`events.insert`,
    `calendarView.delta`, ...) or `*`, `reason` its error reason or code."""
    body = json_object(body)
    method = string_field(body.get("method"), "method")
    assert method is not None
    status = body.get("status")
    if not _is_count(status, 0) or status > 599:
        raise AdminError("'status' must be an HTTP status code")
    times = body.get("times")
    if not _is_count(times, 1):
        raise AdminError("'times' must be a positive integer")
    delay_ms = body.get("delay_ms") or 0
    if not _is_count(delay_ms, 0):
        raise AdminError("'delay_ms' must be a non-negative integer")
    drop = body.get("drop_connection", False)
    if not isinstance(drop, bool):
        raise AdminError("'drop_connection' must be a boolean")
    reason = string_field(body.get("reason"), "reason", required=False)
    calendar_id = string_field(body.get("calendar_id"), "calendar_id", required=False)
    retry_after = body.get("retry_after")
    if retry_after is not None and not _is_count(retry_after, 0):
        raise AdminError("'retry_after' must be a non-negative integer (seconds)")
    faults.add(Fault(method, status, reason, times, delay_ms, drop, calendar_id, retry_after))
    return {
        "calendar_id": calendar_id,
        "retry_after": retry_after,
        "method": method,
        "status": status,
        "reason": reason,
        "times": times,
        "delay_ms": delay_ms,
        "drop_connection": drop,
    }
