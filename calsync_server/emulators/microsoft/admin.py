"""The `/emulator/` admin API's Graph logic: accounts, events as others send them, clock,
throttling, cursor expiry, subscriptions and lifecycle notices."""

from __future__ import annotations

from typing import Any

from calsync_server.emulators.common.admin import AdminError, json_object
from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.state import GraphEmulator
from calsync_server.emulators.microsoft.zones import UnknownZone, zone_info

__all__ = ["AdminError", "add_event", "advance_clock", "create_account"]


def create_account(emulator: GraphEmulator, body: Any) -> dict[str, Any]:
    body = json_object(body)
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email or " " in email.strip():
        raise AdminError("'email' must be an email address")
    zone = body.get("time_zone") or "Pacific Standard Time"
    try:
        zone_info(str(zone))
    except UnknownZone:
        raise AdminError(f"unknown time zone {zone!r}") from None
    calendars = body.get("calendars") or []
    if not isinstance(calendars, list) or not all(isinstance(c, dict) for c in calendars):
        raise AdminError("'calendars' must be a list of objects")
    try:
        mailbox, access, refresh = emulator.store.create_mailbox(
            email.strip(), body.get("name"), str(zone), calendars
        )
    except errors.GraphError as exc:
        raise AdminError(exc.message, exc.status) from exc
    with emulator.store.lock:
        made = [emulator.store.calendars[c] for c in mailbox.calendars]
    return {
        "email": mailbox.email,
        "oid": mailbox.oid,
        "tenant_id": mailbox.tenant_id,
        "access_token": access,
        "refresh_token": refresh,
        "calendars": [
            {"id": c.id, "name": c.name, "can_edit": c.can_edit, "is_default": c.is_default}
            for c in made
        ],
    }


def add_event(emulator: GraphEmulator, email: str, body: Any) -> dict[str, Any]:
    """An event as someone else puts it in the mailbox: an invitation (organizer, response,
    attendees) or a meeting its organizer cancelled (`isCancelled`)."""
    body = json_object(body)
    calendar_id = body.pop("calendar_id", None)
    try:
        mailbox = emulator.store.mailbox_of(email)
        item, _ = emulator.store.create_event(mailbox, calendar_id, body, trusted=True)
    except errors.GraphError as exc:
        raise AdminError(exc.message, exc.status) from exc
    return emulator.store.render(item)


def advance_clock(emulator: GraphEmulator, body: Any) -> dict[str, Any]:
    body = json_object(body)
    seconds = body.get("seconds", 0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise AdminError("'seconds' must be a non-negative number")
    now = emulator.clock.advance(float(seconds))
    # Time jumped: lifecycle notices that are now due go out at once.
    emulator.subscriptions.check_lifetimes()
    return {"now": now.isoformat()}


def expire_cursors(emulator: GraphEmulator, calendar_id: str, body: Any) -> dict[str, Any]:
    body = json_object(body)
    status = body.get("status", 410)
    if status not in (400, 404, 410):
        raise AdminError("'status' must be 400, 404 or 410")
    try:
        emulator.store.expire_cursors(calendar_id, int(status))
    except errors.GraphError as exc:
        raise AdminError(f"no calendar {calendar_id}", 404) from exc
    return {"calendar_id": calendar_id, "expired": True, "status": status}


def lifecycle(emulator: GraphEmulator, subscription_id: str, body: Any) -> dict[str, Any]:
    body = json_object(body)
    try:
        return emulator.subscriptions.lifecycle(subscription_id, str(body.get("event")))
    except errors.GraphError as exc:
        raise AdminError(exc.message, exc.status) from exc


def throttling(emulator: GraphEmulator, body: Any) -> dict[str, Any]:
    body = json_object(body)
    for key in ("requests_per_window", "concurrent_requests"):
        value = body.get(key)
        if key in body and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise AdminError(f"'{key}' must be a positive integer")
    return emulator.throttle.update(body)


def add_calendar(emulator: GraphEmulator, email: str, body: Any) -> dict[str, Any]:
    """A calendar someone shares into the mailbox (read-only unless `can_edit`), or one more of
    the owner's own."""
    body = json_object(body)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AdminError("'name' must be a non-empty string")
    can_edit = body.get("can_edit", True)
    if not isinstance(can_edit, bool):
        raise AdminError("'can_edit' must be a boolean")
    try:
        mailbox = emulator.store.mailbox_of(email)
    except errors.GraphError as exc:
        raise AdminError(f"no account {email}", 404) from exc
    calendar = emulator.store.add_calendar(mailbox, name.strip(), can_edit=can_edit)
    return {"id": calendar.id, "name": calendar.name, "can_edit": calendar.can_edit}


def refuse_login(emulator: GraphEmulator, email: str) -> dict[str, Any]:
    """The account's login stops working: its refresh and access tokens are refused."""
    try:
        mailbox = emulator.store.mailbox_of(email)
    except errors.GraphError as exc:
        raise AdminError(f"no account {email}", 404) from exc
    emulator.store.refuse_login(mailbox.oid)
    return {"email": mailbox.email, "refused": True}
