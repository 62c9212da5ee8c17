"""The `/emulator/` admin API's logic: accounts, stats, faults, sync-token expiry, channels."""

from __future__ import annotations

from typing import Any

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.faults import Fault
from calsync_server.emulators.google.state import Emulator


class AdminError(Exception):
    """A bad admin request: answered 400 (or `status`) with `{"error": message}`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _string(value: Any, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AdminError(f"'{name}' must be a non-empty string")
    return value.strip()


def create_account(emulator: Emulator, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError("the body must be a JSON object")
    email = _string(body.get("email"), "email")
    assert email is not None
    if "@" not in email or " " in email:
        raise AdminError("'email' must be an email address")
    name = _string(body.get("name"), "name", required=False)
    time_zone = _string(body.get("time_zone"), "time_zone", required=False) or "UTC"
    calendars = body.get("calendars") or []
    if not isinstance(calendars, list):
        raise AdminError("'calendars' must be a list")
    specs: list[dict[str, Any]] = []
    for index, spec in enumerate(calendars):
        if not isinstance(spec, dict):
            raise AdminError(f"calendars[{index}] must be an object")
        summary = _string(spec.get("summary"), f"calendars[{index}].summary")
        role = spec.get("access_role") or "owner"
        if role not in ("owner", "writer", "reader"):
            raise AdminError(f"calendars[{index}].access_role must be owner or reader")
        calendar_id = _string(spec.get("id"), f"calendars[{index}].id", required=False)
        tz = _string(spec.get("time_zone"), f"calendars[{index}].time_zone", required=False)
        specs.append({"summary": summary, "id": calendar_id, "access_role": role, "time_zone": tz})
    try:
        account, access, refresh, made = emulator.store.create_account(
            email, name, time_zone, specs
        )
    except errors.GoogleError as exc:
        raise AdminError(exc.message, exc.code) from exc
    return {
        "email": account.email,
        "access_token": access,
        "refresh_token": refresh,
        "calendars": [{"id": c.id, "summary": c.summary} for c in made],
    }


def add_fault(emulator: Emulator, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError("the body must be a JSON object")
    method = _string(body.get("method"), "method")
    assert method is not None
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status <= 599:
        raise AdminError("'status' must be an HTTP status code")
    times = body.get("times")
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise AdminError("'times' must be a positive integer")
    delay_ms = body.get("delay_ms") or 0
    if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or delay_ms < 0:
        raise AdminError("'delay_ms' must be a non-negative integer")
    drop = body.get("drop_connection", False)
    if not isinstance(drop, bool):
        raise AdminError("'drop_connection' must be a boolean")
    reason = _string(body.get("reason"), "reason", required=False)
    calendar_id = _string(body.get("calendar_id"), "calendar_id", required=False)
    retry_after = body.get("retry_after")
    if retry_after is not None and (
        not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0
    ):
        raise AdminError("'retry_after' must be a non-negative integer (seconds)")
    fault = Fault(method, status, reason, times, delay_ms, drop, calendar_id, retry_after)
    emulator.faults.add(fault)
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


def expire_sync_tokens(emulator: Emulator, calendar_id: str) -> dict[str, Any]:
    try:
        emulator.store.expire_sync_tokens(calendar_id)
    except errors.GoogleError as exc:
        raise AdminError(f"no calendar {calendar_id}", 404) from exc
    return {"calendar_id": calendar_id, "expired": True}
