"""POST /api/v1/purge: the user's calsync blocks, found at the providers by calsync's mark;
listed first (`dry_run`, the default), deleted when asked, with what became of each."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody

from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import WITH_BODY, OptionalBody, errors
from calsync_server.api.routes import _strict
from calsync_server.providers.model import RemoteEvent
from calsync_server.runtime import Runtime
from calsync_server.sync.purge import (
    PurgeCalendar,
    PurgeError,
    PurgePlan,
    PurgeScope,
    find_blocks,
    purge_blocks,
)
from shared.schemas import PurgeBlockOut, PurgeCalendarOut, PurgeReport, PurgeRequest

UserId = NamedDependency[int]
# Blocks of each calendar shown in a report.
SAMPLE = 5


def _iso(block: RemoteEvent, which: str) -> str:
    time = block.start if which == "start" else block.end
    if time.day is not None:
        return time.day.isoformat()
    assert time.instant is not None
    return time.instant.isoformat()


def _block(block: RemoteEvent, reason: str | None = None) -> PurgeBlockOut:
    return PurgeBlockOut(
        title=block.title, start=_iso(block, "start"), end=_iso(block, "end"), reason=reason
    )


def _calendar(found: PurgeCalendar) -> PurgeCalendarOut:
    return PurgeCalendarOut(
        calendar_id=found.calendar_id,
        name=found.name,
        account_id=found.account_id,
        account_email=found.account_email,
        provider=found.provider,
        found=len(found.found),
        sample=[_block(b) for b in found.found[:SAMPLE]],
        error=found.error,
        receives_blocks=found.receives_blocks,
        deleted=found.deleted,
        already_gone=found.already_gone,
        failed=[_block(f.block, f.reason) for f in found.failed],
        stopped=found.stopped,
    )


def report_of(plan: PurgePlan, *, dry_run: bool) -> PurgeReport:
    calendars = [_calendar(c) for c in plan.calendars]
    notes = []
    receiving = [c.name for c in plan.receiving if c.stopped is None]
    if receiving:
        notes.append(
            f"sync is on for {', '.join(receiving)}: the next sync writes their blocks again "
            "(ask with stop_sync to stop that)"
        )
    return PurgeReport(
        dry_run=dry_run,
        found=plan.found,
        deleted=sum(c.deleted for c in calendars),
        already_gone=sum(c.already_gone for c in calendars),
        left=sum(len(c.failed) for c in calendars) + sum(1 for c in calendars if c.error),
        calendars=calendars,
        skipped=list(plan.skipped),
        notes=notes,
    )


class Purge(Controller):
    path = "/api/v1/purge"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        responses=errors(*WITH_BODY, 404),
        operation_class=OptionalBody,
        dependencies={"strict": Provide(_strict(PurgeRequest))},
    )
    def purge(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        strict: NamedDependency[PurgeRequest | None],
        data: JSONBody[PurgeRequest | None] = None,
    ) -> PurgeReport:
        """calsync's blocks in the user's calendars (every account, one account or one
        calendar), found at the providers by calsync's mark, not by its own records: after a
        lost database, or to leave calsync. A dry run (the default) lists them; with
        `dry_run: false` they are deleted and calsync's records of them removed. The person's
        own events are never touched."""
        del data  # documents the body; `strict` is what it really says
        asked = strict or PurgeRequest()
        runtime: Runtime = request.app.state.runtime
        scope = PurgeScope(
            user_id=user_id, account_id=asked.account_id, calendar_id=asked.calendar_id
        )
        try:
            plan = find_blocks(runtime.engine, scope)
        except PurgeError as exc:
            raise NotFoundException(str(exc)) from None
        if asked.dry_run:
            return report_of(plan, dry_run=True)
        purge_blocks(runtime.engine, plan, stop_receiving=asked.stop_sync)
        turned_off = [c.calendar_id for c in plan.calendars if c.stopped == "off"]
        if turned_off:
            runtime.channels.stop_calendar_channels(turned_off)
        return report_of(plan, dry_run=False)
