"""The Graph emulator's memory, split by concern; `Store` is all of it, layered: calendars,
mailboxes and their tokens, events and their occurrences, writes (with their rules apart)."""

from calsync_server.emulators.microsoft.store.model import (
    AuthCode,
    CalendarRecord,
    Change,
    Item,
    Mailbox,
    Resource,
    graph_time,
    item_of,
    parse_window,
)
from calsync_server.emulators.microsoft.store.writes import Store

__all__ = [
    "AuthCode",
    "CalendarRecord",
    "Change",
    "Item",
    "Mailbox",
    "Resource",
    "Store",
    "graph_time",
    "item_of",
    "parse_window",
]
