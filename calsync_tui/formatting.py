"""How the dashboard writes times, durations and counts: short, relative to an injected clock;
and how it shows text it did not write (names, titles, errors) exactly as they are."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text

from shared.domain import SyncStatus
from shared.schemas import SyncLogOut

STATUS_STYLE = {
    SyncStatus.SUCCESS: "green",
    SyncStatus.PARTIAL: "yellow",
    SyncStatus.ERROR: "bold red",
}


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def ago(moment: datetime | None, now: datetime, never: str = "never") -> str:
    """`12 s ago`, `3 min ago`; `in 5 min` for the future; `never` for None."""
    if moment is None:
        return never
    seconds = (now - moment).total_seconds()
    if -1 < seconds < 1:
        return "just now"
    return f"{_span(seconds)} ago" if seconds > 0 else f"in {_span(seconds)}"


def until(moment: datetime | None, now: datetime, never: str = "-") -> str:
    """`in 3 h`, or `3 h ago` when already past."""
    if moment is None:
        return never
    seconds = (moment - now).total_seconds()
    return f"in {_span(seconds)}" if seconds >= 0 else f"{_span(seconds)} ago"


def when(moment: datetime | None, all_day: bool = False) -> str:
    """An absolute time for tables: `Tue 14 Jan 09:30` (UTC), or the date for all-day."""
    if moment is None:
        return "-"
    return f"{moment:%a %d %b}" if all_day else f"{moment:%a %d %b %H:%M}"


def duration(log: SyncLogOut) -> str:
    if log.finished_at is None:
        return "running"
    seconds = (log.finished_at - log.started_at).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def changes(log: SyncLogOut) -> str:
    """What a sync changed, in a few words: `+3 ~1 -2 blocks, 5 events`."""
    parts = []
    blocks = (log.blocks_created, log.blocks_updated, log.blocks_deleted)
    if any(blocks):
        parts.append(f"+{blocks[0]} ~{blocks[1]} -{blocks[2]} blocks")
    events = log.events_created + log.events_updated + log.events_deleted
    if events:
        parts.append(f"{events} event{'s' if events != 1 else ''}")
    return ", ".join(parts) or "no changes"


def has_changes(log: SyncLogOut) -> bool:
    return bool(
        log.blocks_created
        + log.blocks_updated
        + log.blocks_deleted
        + log.events_created
        + log.events_updated
        + log.events_deleted
    )


def buckets(moments: list[datetime], now: datetime, minutes: int = 60, width: int = 5) -> list[int]:
    """Counts per `width`-minute bucket over the last `minutes`, oldest first (a sparkline)."""
    count = minutes // width
    out = [0] * count
    start = now - timedelta(minutes=minutes)
    for moment in moments:
        if start <= moment <= now:
            index = min(count - 1, int((moment - start).total_seconds() // (width * 60)))
            out[index] += 1
    return out


_LINE_BREAKS = str.maketrans("\n\r\t\v\f", "     ")


def one_line(text: str) -> str:
    """A table row is one line: a provider's error or a title may hold line breaks, which
    would tear the row apart. Each becomes a space (the same length, so widths hold)."""
    return text.translate(_LINE_BREAKS)


def plain(text: str | Text) -> Text:
    """A table cell shown as written: DataTable reads a `str` cell as markup, so a calendar
    named "Team [old]" would show as "Team " and one with "[/]" would raise. Laid out as
    DataTable lays out a one-line `str` cell."""
    if isinstance(text, Text):
        return text
    return Text(one_line(text), no_wrap=True, end="")


def plain_row(*cells: str | Text) -> list[Text]:
    return [plain(cell) for cell in cells]
