"""The `/emulator/` admin API's Google logic: accounts and sync-token expiry."""

from __future__ import annotations

from typing import Any

from calsync_server.emulators.common.admin import AdminError, json_object, string_field
from calsync_server.emulators.google import errors
from calsync_server.emulators.google.state import Emulator


def create_account(emulator: Emulator, body: Any) -> dict[str, Any]:
    body = json_object(body)
    email = string_field(body.get("email"), "email")
    assert email is not None
    if "@" not in email or " " in email:
        raise AdminError("'email' must be an email address")
    name = string_field(body.get("name"), "name", required=False)
    time_zone = string_field(body.get("time_zone"), "time_zone", required=False) or "UTC"
    calendars = body.get("calendars") or []
    if not isinstance(calendars, list):
        raise AdminError("'calendars' must be a list")
    specs: list[dict[str, Any]] = []
    for index, spec in enumerate(calendars):
        if not isinstance(spec, dict):
            raise AdminError(f"calendars[{index}] must be an object")
        summary = string_field(spec.get("summary"), f"calendars[{index}].summary")
        role = spec.get("access_role") or "owner"
        if role not in ("owner", "writer", "reader"):
            raise AdminError(f"calendars[{index}].access_role must be owner or reader")
        calendar_id = string_field(spec.get("id"), f"calendars[{index}].id", required=False)
        tz = string_field(spec.get("time_zone"), f"calendars[{index}].time_zone", required=False)
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


def expire_sync_tokens(emulator: Emulator, calendar_id: str) -> dict[str, Any]:
    try:
        emulator.store.expire_sync_tokens(calendar_id)
    except errors.GoogleError as exc:
        raise AdminError(f"no calendar {calendar_id}", 404) from exc
    return {"calendar_id": calendar_id, "expired": True}


def quota(emulator: Emulator, body: Any) -> dict[str, Any]:
    """Switch the per-user quota on (`per_minute` calls in any `window_s`) or off
    (`per_minute` null); `window_s` scales Google's minute down so a test meets it in seconds."""
    body = json_object(body)
    per_minute = body.get("per_minute")
    if per_minute is not None and (
        not isinstance(per_minute, int) or isinstance(per_minute, bool) or per_minute < 1
    ):
        raise AdminError("'per_minute' must be a positive integer or null")
    window = body.get("window_s")
    if window is not None and (
        not isinstance(window, int | float) or isinstance(window, bool) or window <= 0
    ):
        raise AdminError("'window_s' must be a positive number of seconds")
    return emulator.quota.update(per_minute, float(window) if window is not None else None)
