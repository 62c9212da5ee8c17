"""Event times in calsync's own keys (issue 14): the start/end of every event and busy block

{"date"} becomes {"day"}; {"dateTime", "timeZone"} becomes {"instant", "zone"}, the text as
it was. A block's source_fingerprint hashes its start/end in the column's shape: where it is
the hash of the row's own start/end (the block shows what its source showed when written,
its text as Google sent it or as calsync wrote it), it is hashed again over what calsync's
codec writes now, so an unchanged source still matches it and no block is written again (a
block deleted by hand stays deleted). A fingerprint of anything else stays as it is.

This file keeps its own copy of the codec: a migration must do the same thing whatever the
code around it becomes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

"""

import hashlib
import json
from datetime import date, datetime
from typing import Any, Sequence, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alembic import op
import sqlalchemy as sa


revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# (day, instant, zone) in each spelling.
GOOGLE = ("date", "dateTime", "timeZone")
CALSYNC = ("day", "instant", "zone")
BATCH = 500

EVENTS = sa.table(
    "event",
    sa.column("id", sa.Integer),
    sa.column("start", sa.JSON(none_as_null=True)),
    sa.column("end", sa.JSON(none_as_null=True)),
)
BLOCKS = sa.table(
    "busy_block",
    sa.column("id", sa.Integer),
    sa.column("summary", sa.String),
    sa.column("start", sa.JSON(none_as_null=True)),
    sa.column("end", sa.JSON(none_as_null=True)),
    sa.column("source_fingerprint", sa.String),
)


def _renamed(value: Any, old: tuple[str, ...], new: tuple[str, ...]) -> Any:
    if not isinstance(value, dict):
        return value
    names = dict(zip(old, new, strict=True))
    return {names.get(key, key): item for key, item in value.items()}


def _written(value: Any, names: tuple[str, ...]) -> dict[str, str] | None:
    """The time as calsync's codec reads and writes it again (its instant with its own
    offset, UTC as "Z"), in the keys `names`; None when unreadable."""
    day, instant, zone_key = names
    if not isinstance(value, dict):
        return None
    zone = str(value[zone_key]) if value.get(zone_key) else None
    try:
        if value.get(instant):
            moment = datetime.fromisoformat(str(value[instant]))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo(zone or "UTC"))
            text = moment.isoformat()
            written = {instant: text[:-6] + "Z" if text.endswith("+00:00") else text}
            if zone:
                written[zone_key] = zone
            return written
        if value.get(day):
            return {day: date.fromisoformat(str(value[day])).isoformat()}
    except (ValueError, ZoneInfoNotFoundError):
        return None
    return None


def _fingerprint(summary: str, start: Any, end: Any) -> str:
    shown = json.dumps([summary, start, end], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(shown.encode()).hexdigest()


def _carried(row: Any, old: tuple[str, ...], new: tuple[str, ...]) -> str | None:
    """The block's fingerprint over its start/end in the `new` keys, when it was the hash of
    the row's own start/end in the `old` ones (as they are, or as the codec writes them)."""
    stored = row.source_fingerprint
    start, end = _written(row.start, old), _written(row.end, old)
    if stored is None or start is None or end is None:
        return stored
    if stored not in (
        _fingerprint(row.summary, row.start, row.end),
        _fingerprint(row.summary, start, end),
    ):
        return stored
    return _fingerprint(row.summary, _renamed(start, old, new), _renamed(end, old, new))


def _rows(table: Any, after: int) -> list[Any]:
    query = sa.select(table).where(table.c.id > after).order_by(table.c.id).limit(BATCH)
    return list(op.get_bind().execute(query))


def _change(row: Any, blocks: bool, old: tuple[str, ...], new: tuple[str, ...]) -> Any:
    """The row's new columns as update parameters; None when nothing changes."""
    before = {"new_start": row.start, "new_end": row.end}
    after = {"new_start": _renamed(row.start, old, new), "new_end": _renamed(row.end, old, new)}
    if blocks:
        before["new_fingerprint"] = row.source_fingerprint
        after["new_fingerprint"] = _carried(row, old, new)
    return None if after == before else {"row_id": row.id, **after}


def _rewrite(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    connection = op.get_bind()
    for table in (EVENTS, BLOCKS):
        blocks = table is BLOCKS
        values = {"start": sa.bindparam("new_start"), "end": sa.bindparam("new_end")}
        if blocks:
            values["source_fingerprint"] = sa.bindparam("new_fingerprint")
        update = sa.update(table).where(table.c.id == sa.bindparam("row_id")).values(**values)
        last = 0
        while rows := _rows(table, last):
            changes = [c for c in (_change(row, blocks, old, new) for row in rows) if c]
            if changes:
                connection.execute(update, changes)
            last = rows[-1].id


def upgrade() -> None:
    _rewrite(GOOGLE, CALSYNC)


def downgrade() -> None:
    _rewrite(CALSYNC, GOOGLE)
