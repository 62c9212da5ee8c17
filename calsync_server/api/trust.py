"""Trust (issue 19): GET /api/v1/explain (why an event blocks or not, per target), GET
/api/v1/plan (what a sync would change now, written nowhere), and POST
/api/v1/calendars/{id}/confirm-deletes (let the safety catch's held deletes go)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import PathParameter, QueryParameter
from sqlmodel import Session

from calsync_server.api import queries
from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import WITH_PARAMETERS, errors
from calsync_server.runtime import Runtime
from calsync_server.sync import holds, preview
from shared.domain import SyncKind
from shared.schemas import MAX_EXPLAINED, MAX_ID, CalendarOut, Explanation, PlanPreview

UserId = NamedDependency[int]
OptionalId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]
IdParam = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
# A search looks at events around `at` (or from today) this far either way.
SEARCH_SPAN = timedelta(days=1)


def _problem(message: str, key: str) -> ValidationException:
    return ValidationException(message, extra=[{"message": message, "key": key, "source": "query"}])


class TrustApi(Controller):
    path = "/api/v1"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @get("/explain", sync_to_thread=True, responses=errors(*WITH_PARAMETERS))
    def explain(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        event_id: OptionalId = None,
        calendar_id: OptionalId = None,
        provider_event_id: Annotated[
            str | None, QueryParameter(min_length=1, max_length=1024)
        ] = None,
        title: Annotated[str | None, QueryParameter(min_length=1, max_length=200)] = None,
        at: Annotated[
            datetime | None, QueryParameter(description="An instant the event holds, with offset")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_EXPLAINED)] = 5,
    ) -> Explanation:
        """Why an event blocks or not, in each of your other calendars: the rule that decided,
        the block that stands for it, whether it is what calsync would write now, and who wrote
        it in which sync. By `event_id`; by `calendar_id` and `provider_event_id`; or by a
        piece of its `title` (and an instant `at` it holds)."""
        if at is not None and at.utcoffset() is None:
            raise _problem("at needs an offset or Z", "at")
        runtime: Runtime = request.app.state.runtime
        now = runtime.clock.now()
        with Session(runtime.db, autoflush=False) as session:
            try:
                rows, truncated = preview.find_events(
                    session,
                    user_id,
                    event_id=event_id,
                    calendar_id=calendar_id,
                    provider_event_id=provider_event_id,
                    title=title,
                    at=at,
                    limit=limit,
                )
            except ValueError as exc:
                key = "calendar_id" if "calendar_id" in str(exc) else "event_id"
                raise _problem(str(exc), key) from None
            if not rows:
                return Explanation(events=[])
            found = preview.plan_user(
                session, user_id, now, runtime.settings.horizon_days, extra=rows
            )
            events = [preview.explain(session, found, row) for row in rows]
            session.rollback()
        return Explanation(events=events, truncated=truncated)

    @get("/plan", sync_to_thread=True, responses=errors(*WITH_PARAMETERS, 404))
    def plan(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        calendar_id: OptionalId = None,
        full: Annotated[
            bool, QueryParameter(description="Plan a full reconcile: list every target's blocks")
        ] = False,
    ) -> PlanPreview:
        """What a sync of one calendar (or of every synced one) would change now, per target
        and with reasons: each calendar read afresh from its provider, nothing written. With
        `full`, what a full reconcile would: calsync's blocks in every target listed too, so
        orphans it would delete are shown."""
        runtime: Runtime = request.app.state.runtime
        if calendar_id is not None:
            with Session(runtime.db) as session:
                calendar = queries.owned_calendar(session, user_id, calendar_id)
                if calendar is None:
                    raise NotFoundException(f"no calendar {calendar_id}")
        return runtime.engine.dry_run(
            user_id, None if calendar_id is None else [calendar_id], full=full
        )

    @post(
        "/calendars/{calendar_id:int}/confirm-deletes",
        status_code=200,
        sync_to_thread=True,
        responses=errors(*WITH_PARAMETERS, 404),
    )
    def confirm_deletes(
        self, request: Request[Any, Any, Any], user_id: UserId, calendar_id: IdParam
    ) -> CalendarOut:
        """Let the deletes the safety catch holds for this calendar go: the hold is cleared
        and a full sync of it deletes them. 400 when nothing is held."""
        runtime: Runtime = request.app.state.runtime
        with Session(runtime.db) as session:
            calendar = queries.owned_calendar(session, user_id, calendar_id)
            if calendar is None:
                raise NotFoundException(f"no calendar {calendar_id}")
            if not calendar.held_deletes:
                raise ValidationException(f"calendar {calendar_id} holds no deletes")
            holds.confirm(session, calendar)
            session.commit()
        runtime.enqueue(calendar_id, SyncKind.MANUAL, full=True)
        with Session(runtime.db) as session:
            (result,) = queries.calendars(
                session, user_id, runtime.clock.now(), only=calendar_id, settings=runtime.settings
            )
        return result
