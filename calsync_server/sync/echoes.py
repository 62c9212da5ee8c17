"""Telling calsync's own writes coming back (echoes) from the user's hand edits of a block."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from calsync_server.providers.model import EventTime, RemoteEvent
from calsync_server.sync.planner import shows_same_time


class StoredBlock(Protocol):
    """What calsync last wrote for a block (a planner ExistingBlock, or a row's view of it)."""

    @property
    def provider_event_id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def start(self) -> EventTime | None: ...
    @property
    def end(self) -> EventTime | None: ...
    @property
    def etag(self) -> str | None: ...


class BlockChange(StrEnum):
    # calsync's own write coming back: costs no further provider call.
    ECHO = "echo"
    # Moved, retitled or freed by the user: marked user_modified and left alone.
    USER_MODIFIED = "user_modified"
    # Deleted by the user: not recreated while its source is unchanged.
    USER_DELETED = "user_deleted"


def classify_block_change(stored: StoredBlock, incoming: RemoteEvent | None) -> BlockChange:
    """What the provider now shows for a block calsync has stored (None: it is gone).

    The version the provider gave calsync's last write is the echo check; without it, the
    fields calsync owns are compared. Deletions calsync made itself never reach here: their
    rows are gone once applied.
    """
    if incoming is None or incoming.cancelled:
        return BlockChange.USER_DELETED
    if incoming.id != stored.provider_event_id:
        raise ValueError("the incoming event is not the stored block")
    if stored.etag is not None and incoming.version == stored.etag:
        return BlockChange.ECHO
    unchanged = (
        incoming.is_block
        and incoming.busy
        and incoming.title == stored.summary
        and shows_same_time(incoming.start, stored.start)
        and shows_same_time(incoming.end, stored.end)
    )
    return BlockChange.ECHO if unchanged else BlockChange.USER_MODIFIED
