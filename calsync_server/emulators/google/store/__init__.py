"""The Google emulator's memory, split by concern; `Store` is all of it, layered: calendars and
their ACL, accounts and tokens, events and their instances, lists and sync tokens, writes."""

from calsync_server.emulators.google.store.model import (
    AuthCode,
    Calendar,
    ListQuery,
    Resource,
    StoredEvent,
    Window,
)
from calsync_server.emulators.google.store.writes import Store

__all__ = ["AuthCode", "Calendar", "ListQuery", "Resource", "Store", "StoredEvent", "Window"]
