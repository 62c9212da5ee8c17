"""A CalDAV calendar's cursor: the server's sync-token, or, for a server without sync-collection,
calsync's own snapshot of the calendar (its ctag and every resource's ETag in the window).

A snapshot is what the next poll compares with: the same ctag is "nothing changed" (one small
PROPFIND), another one is a time-range query whose ETags, set beside the snapshot's, say which
resources changed and which are gone. Snapshots carry a prefix no server's token starts with,
so the engine keeps either kind in the same column without knowing which it holds.
"""

from __future__ import annotations

import msgspec

PREFIX = "calsync-ctag:"


class Snapshot(msgspec.Struct, frozen=True):
    """The calendar's ctag when it was read (None: the server has none) and the ETag of each
    resource the window held then, by resource name (None: the server sent no ETag)."""

    ctag: str | None
    etags: dict[str, str | None]


class BadCursor(ValueError):
    """A cursor that claims to be a snapshot and cannot be read back."""


def encode(snapshot: Snapshot) -> str:
    return PREFIX + msgspec.json.encode(snapshot).decode()


def decode(cursor: str) -> Snapshot | None:
    """The snapshot a cursor holds; None for a sync-token (anything without the prefix)."""
    if not cursor.startswith(PREFIX):
        return None
    try:
        return msgspec.json.decode(cursor[len(PREFIX) :].encode(), type=Snapshot)
    except msgspec.DecodeError as exc:
        raise BadCursor(str(exc)) from None
