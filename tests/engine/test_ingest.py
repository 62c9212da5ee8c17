"""Storing a read: events new to calsync go in together, as rows equal to those an update writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from calsync_server.db.models import Calendar, Event
from calsync_server.providers.model import ChangeSet, EventTime, RemoteEvent
from calsync_server.sync.ingest import store_changes
from calsync_server.sync.report import SyncReport
from calsync_server.sync.rows import event_columns
from tests.support.world import World

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
COLUMNS = list(event_columns(RemoteEvent("x", EventTime.at(START), EventTime.at(START)), "UTC"))


def event(pid: str, version: str, *, cancelled: bool = False, hour: int = 9) -> RemoteEvent:
    start = START.replace(hour=hour)
    return RemoteEvent(
        id=pid,
        start=EventTime.at(start, "Europe/Berlin"),
        end=EventTime.at(start + timedelta(minutes=30), "Europe/Berlin"),
        title=f"Meeting {pid}",
        version=version,
        cancelled=cancelled,
        attendees=("Bob@Example.com ", "ada@example.com"),
        updated=start,
    )


def store(world: World, calendar_id: int, changes: ChangeSet) -> tuple[SyncReport, list[str]]:
    report = SyncReport()
    with Session(world.db) as session:
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        found = store_changes(session, calendar, changes, "UTC", report)
        session.commit()
    return report, found.changed


def rows(world: World, calendar_id: int) -> dict[str, dict[str, Any]]:
    with Session(world.db) as session:
        stored = session.exec(select(Event).where(Event.calendar_id == calendar_id))
        return {e.provider_event_id: {c: getattr(e, c) for c in COLUMNS} for e in stored}


def test_new_events_are_stored_as_an_update_stores_them(world: World) -> None:
    calendar = world.account(f"ingest-{uuid.uuid4().hex[:8]}@example.com")["primary"]
    first = ChangeSet(events=(event("a", "1"), event("b", "1", hour=11)), cursor="c1")
    report, changed = store(world, calendar.id, first)
    assert (report.events_created, report.events_updated) == (2, 0)
    assert changed == ["a", "b"]
    inserted = rows(world, calendar.id)
    # The same events read again go through the ORM rows: nothing differs.
    again = ChangeSet(events=(event("a", "2"), event("b", "2", hour=11)), cursor="c2")
    report, _ = store(world, calendar.id, again)
    assert report.events_updated == 2
    updated = rows(world, calendar.id)
    for pid in ("a", "b"):
        assert {**inserted[pid], "etag": "2"} == updated[pid]
    assert inserted["a"]["attendees"] == ["ada@example.com", "bob@example.com"]
    assert inserted["a"]["start_at"] == START


def test_an_event_new_and_gone_in_one_read_is_stored_deleted(world: World) -> None:
    calendar = world.account(f"ingest-gone-{uuid.uuid4().hex[:8]}@example.com")["primary"]
    read = ChangeSet(
        events=(
            event("twice", "1"),
            event("twice", "2", hour=10),  # the same item again, newer
            event("cancelled", "1"),
            event("cancelled", "2", cancelled=True),
            event("removed", "1"),
        ),
        removed=("removed",),
        cursor="c1",
    )
    report, changed = store(world, calendar.id, read)
    assert (report.events_created, report.events_updated, report.events_deleted) == (3, 1, 2)
    assert sorted(set(changed)) == ["cancelled", "removed", "twice"]
    stored = rows(world, calendar.id)
    assert stored["twice"]["etag"] == "2"
    assert stored["twice"]["start_at"] == START.replace(hour=10)
    assert not stored["twice"]["is_deleted"]
    for pid in ("cancelled", "removed"):
        assert stored[pid]["is_deleted"]
        assert stored[pid]["status"] == "cancelled"
