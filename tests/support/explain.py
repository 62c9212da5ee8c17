"""Explain of an event found by its title, planned as the API's and the command's explain plan
it (sync/preview.py), for the engine tests that read what explain tells."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from calsync_server.sync import preview
from shared.schemas import ExplainEvent
from tests.support.world import World


def explained(
    world: World, user_id: int, title: str, now: datetime
) -> tuple[ExplainEvent, list[str]]:
    """Explain of the one event titled so, at `now`; and the plan's notes. Nothing is kept."""
    with Session(world.db, autoflush=False) as session:
        rows, _ = preview.find_events(
            session,
            user_id,
            event_id=None,
            calendar_id=None,
            provider_event_id=None,
            title=title,
            at=None,
            limit=1,
        )
        found = preview.plan_user(session, user_id, now, world.settings.horizon_days, extra=rows)
        (event,) = [preview.explain(session, found, row) for row in rows]
        session.rollback()
    return event, found.notes
