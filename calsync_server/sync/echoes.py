"""Telling calsync's own writes coming back (echoes) from the user's hand edits of a block."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from calsync_server.sync.events import EventSnapshot, shows_same_time


class StoredBlock(Protocol):
    """What calsync last wrote for a block (a busy_block row or a planner ExistingBlock)."""

    @property
    def provider_event_id(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def start(self) -> Mapping[str, Any] | None: ...
    @property
    def end(self) -> Mapping[str, Any] | None: ...
    @property
    def etag(self) -> str | None: ...


class BlockChange(StrEnum):
    # calsync's own write coming back: costs no further provider call.
    ECHO = "echo"
    # Moved, retitled or freed by the user: marked user_modified and left alone.
    USER_MODIFIED = "user_modified"
    # Deleted by the user: not recreated while its source is unchanged.
    USER_DELETED = "user_deleted"


def classify_block_change(stored: StoredBlock, incoming: EventSnapshot) -> BlockChange:
    """What an incoming item of a target's feed means for a block calsync has stored.

    Deletions calsync made itself never reach here: their rows are gone once applied.
    """
    if incoming.provider_event_id != stored.provider_event_id:
        raise ValueError("the incoming event is not the stored block")
    if stored.etag is not None and incoming.etag == stored.etag:
        return BlockChange.ECHO
    if incoming.status == "cancelled":
        return BlockChange.USER_DELETED
    unchanged = (
        incoming.is_busy_block
        and incoming.transparency == "opaque"
        and incoming.summary == stored.summary
        and shows_same_time(incoming.start, stored.start)
        and shows_same_time(incoming.end, stored.end)
    )
    return BlockChange.ECHO if unchanged else BlockChange.USER_MODIFIED
