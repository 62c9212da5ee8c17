"""The JSON API under /api/v1: status, accounts, calendars, busy blocks, logs, channels, sync."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlmodel import Session, col, select

from calsync_server.accounts.disconnect import disconnect_account
from calsync_server.api import queries
from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import (
    AUTHENTICATED,
    WITH_BODY,
    WITH_PARAMETERS,
    OptionalBody,
    errors,
)
from calsync_server.db.models import Account, Calendar, SyncJob
from calsync_server.runtime import Runtime
from calsync_server.sync.rows import calendar_rules, set_rules
from calsync_server.sync.rules import RuleError
from shared.domain import AccountState, JobState, SyncKind, SyncStatus
from shared.schemas import (
    DEFAULT_PAGE,
    MAX_ID,
    MAX_PAGE,
    AccountOut,
    BusyBlockPage,
    CalendarOut,
    CalendarPatch,
    ChannelOut,
    DisconnectReport,
    JobOut,
    Status,
    SyncAccepted,
    SyncLogPage,
    SyncRequest,
)

UserId = NamedDependency[int]
IdParam = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
OptionalId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, QueryParameter(max_length=200)]


T = TypeVar("T", bound=msgspec.Struct)
_AT_PATH = re.compile(r" - at `\$\.?(?P<key>[^`]*)`$")


def _strict(schema: type[T]) -> Callable[[Request[Any, Any, Any]], Awaitable[T | None]]:
    """The body decoded strictly: Litestar converts bodies leniently (1 -> true, "7" -> 7), and
    a JSON API that takes a wrong type silently is one a client can misuse without knowing.
    Runs after Litestar's own parsing, so the body is cached and already valid JSON."""

    async def provide(request: Request[Any, Any, Any]) -> T | None:
        raw = await request.body()
        if not raw.strip():
            return None
        try:
            decoded: T | None = msgspec.json.decode(raw, type=schema | None, strict=True)
        except msgspec.ValidationError as exc:
            message = str(exc)
            where = _AT_PATH.search(message)
            problem = {
                "message": message[: where.start()] if where else message,
                "key": (where.group("key") if where else "") or "data",
                "source": "body",
            }
            raise ValidationException(message, extra=[problem]) from None
        return decoded

    return provide


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _cursor(cursor: str | None) -> int | None:
    try:
        return queries.decode_cursor(cursor)
    except queries.BadCursor as exc:
        raise ValidationException(str(exc)) from None


class ApiV1(Controller):
    path = "/api/v1"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @get("/status", sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def status(self, request: Request[Any, Any, Any], user_id: UserId) -> Status:
        """Counters for the dashboard's overview."""
        runtime = _runtime(request)
        with Session(runtime.db) as session:
            return queries.status(session, user_id, runtime.clock.now(), runtime.settings)

    @get("/accounts", sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def accounts(self, request: Request[Any, Any, Any], user_id: UserId) -> list[AccountOut]:
        runtime = _runtime(request)
        with Session(runtime.db) as session:
            return queries.accounts(session, user_id, runtime.settings)

    @delete(
        "/accounts/{account_id:int}",
        status_code=200,
        sync_to_thread=True,
        responses=errors(*WITH_PARAMETERS, 404),
    )
    def disconnect(
        self, request: Request[Any, Any, Any], user_id: UserId, account_id: IdParam
    ) -> DisconnectReport:
        """Disconnect an account: its channels stopped, its blocks removed everywhere, its
        token revoked, its local data deleted (domain.md)."""
        report = disconnect_account(_runtime(request), user_id, account_id)
        if report is None:
            raise NotFoundException(f"no account {account_id}")
        return report

    @get("/calendars", sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def calendars(self, request: Request[Any, Any, Any], user_id: UserId) -> list[CalendarOut]:
        runtime = _runtime(request)
        with Session(runtime.db) as session:
            return queries.calendars(
                session, user_id, runtime.clock.now(), settings=runtime.settings
            )

    @patch(
        "/calendars/{calendar_id:int}",
        sync_to_thread=True,
        # 409: sync on for a calendar the user already syncs through another account.
        responses=errors(*WITH_BODY, 404, 409),
        dependencies={"strict": Provide(_strict(CalendarPatch))},
    )
    def change_calendar(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        calendar_id: IdParam,
        data: JSONBody[CalendarPatch],
        strict: NamedDependency[CalendarPatch | None],
    ) -> CalendarOut:
        """Change sync, role, privacy, all-day or whether its blocks stay when sync is turned
        off; the blocks follow (turning sync on runs the initial sync, off removes the blocks
        it sourced and, unless kept, those it holds). Turning sync on for a calendar the user
        already syncs through another account is refused (409), naming that copy."""
        data = strict or data  # `data` documents the body; `strict` is what it really says
        runtime = _runtime(request)
        with Session(runtime.db) as session:
            calendar = queries.owned_calendar(session, user_id, calendar_id)
            if calendar is None:
                raise NotFoundException(f"no calendar {calendar_id}")
            account = session.get(Account, calendar.account_id)
            assert account is not None
            if data.role is not None and data.role.is_target and calendar.read_only:
                raise ValidationException(
                    "this calendar is read-only: it can be a source, never a target"
                )
            if data.sync_enabled and not calendar.sync_enabled:
                first = queries.synced_copy(session, user_id, calendar)
                if first is not None:
                    copy, through = first
                    raise HTTPException(
                        f'"{calendar.name}" is already synced through {through} as '
                        f'"{copy.name}" (calendar {copy.id}): it is the same calendar, so '
                        "calsync syncs it once; turn sync off there first to sync it here",
                        status_code=409,
                    )
            before = (
                calendar.sync_enabled,
                calendar.role,
                calendar.busy_title,
                calendar.include_all_day,
            )
            rules_before = calendar_rules(calendar)
            try:
                set_rules(calendar, data)
            except RuleError as exc:
                # Refused when set, never at sync time: nothing is saved.
                raise ValidationException(str(exc)) from None
            kept_before = calendar.keep_blocks_when_off
            for name in (
                "sync_enabled",
                "role",
                "busy_title",
                "include_all_day",
                "keep_blocks_when_off",
            ):
                value = getattr(data, name)
                if value is not None:
                    setattr(calendar, name, value)
            turned_off = before[0] and not calendar.sync_enabled
            # Off already, with its blocks kept: no longer kept, they go now.
            let_go = not calendar.sync_enabled and kept_before and not calendar.keep_blocks_when_off
            if turned_off:
                # Its events go stale while off: turning it on again starts from a full sync.
                calendar.sync_token = None
            changed = before != (
                calendar.sync_enabled,
                calendar.role,
                calendar.busy_title,
                calendar.include_all_day,
            ) or rules_before != calendar_rules(calendar)
            session.add(calendar)
            session.commit()
            # A calendar with sync off holds and sources no blocks: its settings wait for sync on.
            resync = changed and account.state == AccountState.ACTIVE
            resync = resync and (calendar.sync_enabled or turned_off)
            resync = resync or (let_go and account.state == AccountState.ACTIVE)
            full = calendar.sync_enabled
        if turned_off:
            runtime.channels.stop_calendar_channels([calendar_id])
        if resync:
            # Settings change which blocks should exist everywhere: a full pass for this
            # calendar (a first sync, or a turned-off calendar's removal, is one anyway).
            runtime.enqueue(calendar_id, SyncKind.MANUAL, full=full)
        if calendar.sync_enabled and not before[0]:
            # Its push channel now, not at the next tick; after its first sync is queued, so
            # the tick sees it busy rather than due for a poll of its own.
            runtime.tick_soon()
        with Session(runtime.db) as session:
            (result,) = queries.calendars(
                session, user_id, runtime.clock.now(), only=calendar_id, settings=runtime.settings
            )
        return result

    @get("/busy-blocks", sync_to_thread=True, responses=errors(*WITH_PARAMETERS))
    def busy_blocks(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        target_calendar_id: OptionalId = None,
        source_calendar_id: OptionalId = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
    ) -> BusyBlockPage:
        """The user's busy blocks, oldest row first, a page at a time."""
        with Session(_runtime(request).db) as session:
            return queries.busy_blocks(
                session,
                user_id,
                target_calendar_id=target_calendar_id,
                source_calendar_id=source_calendar_id,
                limit=limit,
                after=_cursor(cursor),
            )

    @get("/sync-logs", sync_to_thread=True, responses=errors(*WITH_PARAMETERS))
    def sync_logs(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        calendar_id: OptionalId = None,
        status: Annotated[SyncStatus | None, QueryParameter()] = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
    ) -> SyncLogPage:
        """The user's sync logs, newest first, a page at a time."""
        with Session(_runtime(request).db) as session:
            return queries.sync_logs(
                session,
                user_id,
                calendar_id=calendar_id,
                status=status,
                limit=limit,
                before=_cursor(cursor),
            )

    @get("/channels", sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def channels(self, request: Request[Any, Any, Any], user_id: UserId) -> list[ChannelOut]:
        """Push-channel health per synced calendar; `polling` when no healthy channel."""
        runtime = _runtime(request)
        with Session(runtime.db) as session:
            return queries.channels(session, user_id, runtime.clock.now(), runtime.settings)

    @post(
        "/sync",
        status_code=HTTP_202_ACCEPTED,
        sync_to_thread=True,
        responses=errors(*WITH_BODY, 404),
        # No body, or `null`, syncs every synced calendar.
        operation_class=OptionalBody,
        dependencies={"strict": Provide(_strict(SyncRequest))},
    )
    def sync(
        self,
        request: Request[Any, Any, Any],
        user_id: UserId,
        strict: NamedDependency[SyncRequest | None],
        data: JSONBody[SyncRequest | None] = None,
    ) -> SyncAccepted:
        """Queue a sync of one calendar or of every synced one (a full reconcile with `full`)."""
        del data  # documents the body in the schema; `strict` is what it really says
        request_ = strict or SyncRequest()
        runtime = _runtime(request)
        with Session(runtime.db) as session:
            if request_.calendar_id is not None:
                calendar = queries.owned_calendar(session, user_id, request_.calendar_id)
                if calendar is None:
                    raise NotFoundException(f"no calendar {request_.calendar_id}")
                if not calendar.sync_enabled:
                    raise ValidationException(
                        f"calendar {request_.calendar_id} has sync turned off: turn it on first"
                    )
                targets = [request_.calendar_id]
            else:
                targets = [
                    c.id
                    for c in session.exec(
                        select(Calendar)
                        .join(Account, col(Calendar.account_id) == Account.id)
                        .where(
                            Account.user_id == user_id,
                            Account.state == AccountState.ACTIVE,
                            col(Calendar.sync_enabled).is_(True),
                        )
                        .order_by(col(Calendar.id))
                    )
                    if c.id is not None
                ]
        kind = SyncKind.FULL if request_.full else SyncKind.MANUAL
        jobs = []
        for calendar_id in targets:
            enqueued = runtime.enqueue(calendar_id, kind, full=request_.full)
            jobs.append((calendar_id, enqueued))
        with Session(runtime.db) as session:
            out = []
            for calendar_id, enqueued in jobs:
                job = session.get(SyncJob, enqueued.job_id)
                out.append(
                    JobOut(
                        id=enqueued.job_id,
                        calendar_id=calendar_id,
                        state=JobState(job.state) if job else JobState.DONE,
                        full=bool(job.full) if job else request_.full,
                        coalesced=enqueued.coalesced,
                    )
                )
        return SyncAccepted(jobs=out)
