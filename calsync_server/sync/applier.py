"""The applier: the only code that writes busy blocks to providers, then records what stands."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.base import (
    BlockWrite,
    BlockWriteKind,
    ProviderError,
    ReauthRequired,
    WriteResult,
)
from calsync_server.sync.events import EventSnapshot
from calsync_server.sync.planner import BusyBlockPlan, DesiredBlock, ExistingBlock, block_matches
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport

BlockKey = tuple[int, str]  # (target calendar id, source key)


@dataclass(frozen=True, slots=True)
class _Intent:
    """Why a write is made, so its result can be recorded (and followed up) correctly."""

    write: BlockWrite
    target_calendar_id: int
    desired: DesiredBlock | None = None
    existing: ExistingBlock | None = None


class BlockApplier:
    """Runs a plan's writes, one batch stream per account, and keeps busy_block rows in step."""

    def __init__(
        self,
        session: Session,
        providers: ProviderPool,
        calendars: Mapping[int, Calendar],
        accounts: Mapping[int, Account],
        rows: dict[BlockKey, BusyBlock],
        event_ids: Mapping[tuple[int, str], int],
        report: SyncReport,
        now: datetime,
    ) -> None:
        self._session = session
        self._providers = providers
        self._calendars = calendars
        self._accounts = accounts
        self._rows = rows
        self._event_ids = event_ids
        self._report = report
        self._now = now

    def apply(self, plan: BusyBlockPlan, orphans: Sequence[tuple[int, str]] = ()) -> None:
        """Apply `plan`, and delete `orphans` ((target, provider id) of blocks nobody wants)."""
        intents: list[_Intent] = []
        for desired in plan.creates:
            intents.append(self._insert(desired))
        for existing, desired in plan.patches:
            intents.append(self._patch(existing.provider_event_id, desired, existing))
        for existing in plan.deletes:
            delete = self._delete(existing.target_calendar_id, existing.provider_event_id, existing)
            if existing.user_deleted:
                self._forget(delete)  # the user already deleted it: only our record is left
            else:
                intents.append(delete)
        for target_id, provider_event_id in orphans:
            intents.append(self._delete(target_id, provider_event_id, None))
        if plan.preserved:
            count = len(plan.preserved)
            self._report.note(f"preserved {count} user modification{'s' if count > 1 else ''}")
        # Follow-ups (409 -> read -> patch; a patch of a vanished block -> insert) are bounded.
        for _round in range(3):
            if not intents:
                break
            intents = self._run(intents)

    # -- intents ------------------------------------------------------------------------------

    def _provider_calendar(self, target_id: int) -> str:
        return self._calendars[target_id].provider_calendar_id

    def _insert(self, desired: DesiredBlock) -> _Intent:
        write = BlockWrite(
            BlockWriteKind.INSERT,
            self._provider_calendar(desired.target_calendar_id),
            desired.provider_event_id,
            desired.resource(),
        )
        return _Intent(write, desired.target_calendar_id, desired=desired)

    def _patch(
        self, provider_event_id: str, desired: DesiredBlock, existing: ExistingBlock | None
    ) -> _Intent:
        write = BlockWrite(
            BlockWriteKind.PATCH,
            self._provider_calendar(desired.target_calendar_id),
            provider_event_id,
            desired.patch_body(),
        )
        return _Intent(write, desired.target_calendar_id, desired=desired, existing=existing)

    def _delete(
        self, target_id: int, provider_event_id: str, existing: ExistingBlock | None
    ) -> _Intent:
        write = BlockWrite(
            BlockWriteKind.DELETE, self._provider_calendar(target_id), provider_event_id
        )
        return _Intent(write, target_id, existing=existing)

    def _run(self, intents: list[_Intent]) -> list[_Intent]:
        by_account: dict[int, list[_Intent]] = defaultdict(list)
        for intent in intents:
            by_account[self._calendars[intent.target_calendar_id].account_id].append(intent)
        follow_ups: list[_Intent] = []
        for account_id, group in by_account.items():
            try:
                provider = self._providers.get(self._accounts[account_id])
                results = provider.write([intent.write for intent in group])
            except ReauthRequired:
                raise  # the engine marks that account; its calendars stop syncing
            except ProviderError as error:
                # One account the provider refuses outright fails no other account's writes.
                results = [WriteResult(intent.write, error=error) for intent in group]
            for intent, result in zip(group, results, strict=True):
                follow_ups.extend(self._record(intent, result))
        return follow_ups

    # -- results ------------------------------------------------------------------------------

    def _record(self, intent: _Intent, result: WriteResult) -> list[_Intent]:
        kind = intent.write.kind
        error = result.error
        if error is None:
            if kind is BlockWriteKind.DELETE:
                self._forget(intent)
                self._report.blocks_deleted += 1
            elif kind is BlockWriteKind.GET:
                return self._after_conflict(intent, result.resource or {})
            else:
                self._remember(intent, result.resource or {})
                if kind is BlockWriteKind.INSERT:
                    self._report.blocks_created += 1
                else:
                    self._report.blocks_updated += 1
            return []
        if kind is BlockWriteKind.DELETE and error.gone:
            self._forget(intent)  # already gone: that is what we wanted
            return []
        if kind is BlockWriteKind.INSERT and error.status == 409 and intent.desired:
            # The deterministic id exists (a retry after a crash, or a block deleted by hand):
            # read it, and patch only if it differs.
            get = BlockWrite(BlockWriteKind.GET, intent.write.calendar_id, intent.write.event_id)
            return [_Intent(get, intent.target_calendar_id, desired=intent.desired)]
        if kind is BlockWriteKind.PATCH and error.gone and intent.desired:
            return [self._insert(intent.desired)]
        if error.forbidden:
            calendar = self._calendars[intent.target_calendar_id]
            if not calendar.read_only:
                calendar.read_only = True
                self._session.add(calendar)
            self._report.note(f"{calendar.name} is read-only: it will receive no busy blocks")
            return []
        self._report.failed_writes += 1
        self._report.retryable = self._report.retryable or error.transient
        self._report.note(f"{kind.value} of a block failed: {error}")
        return []

    def _after_conflict(self, intent: _Intent, resource: dict[str, Any]) -> list[_Intent]:
        desired = intent.desired
        assert desired is not None
        zone = self._calendars[intent.target_calendar_id].time_zone or "UTC"
        found = EventSnapshot.from_google(resource, zone)
        standing = ExistingBlock(
            target_calendar_id=desired.target_calendar_id,
            source_calendar_id=desired.source_calendar_id,
            source_key=desired.source_key,
            provider_event_id=found.provider_event_id,
            summary=found.summary or "",
            start=found.start,
            end=found.end,
        )
        if found.status != "cancelled" and found.is_busy_block and block_matches(standing, desired):
            self._remember(intent, resource)  # already right: no write needed
            self._report.blocks_created += 1
            return []
        return [self._patch(desired.provider_event_id, desired, None)]

    def _remember(self, intent: _Intent, resource: dict[str, Any]) -> None:
        desired = intent.desired
        assert desired is not None
        key = (desired.target_calendar_id, desired.source_key)
        row = self._rows.get(key)
        if row is None:
            row = BusyBlock(
                target_calendar_id=desired.target_calendar_id,
                source_calendar_id=desired.source_calendar_id,
                source_key=desired.source_key,
                provider_event_id=desired.provider_event_id,
                summary=desired.summary,
                created_at=self._now,
                updated_at=self._now,
            )
            self._rows[key] = row
        row.source_calendar_id = desired.source_calendar_id
        row.source_event_id = self._event_ids.get(
            (desired.source_calendar_id, desired.source_provider_event_id)
        )
        row.provider_event_id = str(resource.get("id") or desired.provider_event_id)
        row.etag = resource.get("etag")
        row.summary = desired.summary
        row.start = dict(desired.start)
        row.end = dict(desired.end)
        row.start_at = desired.start_at
        row.end_at = desired.end_at
        row.user_modified = False
        row.user_deleted = False
        row.source_fingerprint = desired.fingerprint
        row.updated_at = self._now
        self._session.add(row)

    def _forget(self, intent: _Intent) -> None:
        existing = intent.existing
        if existing is None:
            return
        row = self._rows.pop((existing.target_calendar_id, existing.source_key), None)
        if row is not None and row.provider_event_id == existing.provider_event_id:
            self._session.delete(row)
        elif row is not None:
            self._rows[(existing.target_calendar_id, existing.source_key)] = row
