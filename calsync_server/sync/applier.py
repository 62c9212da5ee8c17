"""The applier: the only code that writes busy blocks to providers, then records what stands.

It speaks calsync's block operations (``BlockOp``) and reads their results as calsync's
types and error kinds. Where a provider assigns block ids, a create carries no id (only the
block's digest, the provider's idempotency key) and the row is written, with the id the
provider gave, when the create answers.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.model import (
    BlockAction,
    BlockOp,
    BlockResult,
    ErrorKind,
    Provider,
    ProviderError,
    RemoteEvent,
)
from calsync_server.sync import stored
from calsync_server.sync.planner import BusyBlockPlan, DesiredBlock, ExistingBlock, block_matches
from calsync_server.sync.providers import ProviderPool
from calsync_server.sync.report import SyncReport

BlockKey = tuple[int, str]  # (target calendar id, source key)
# Block operations sent to a provider at once between progress reports: Google batches 50,
# Graph 20, CalDAV one at a time, so 100 costs no call more than one apply of everything.
PROGRESS_CHUNK = 100


@dataclass(frozen=True, slots=True)
class _Intent:
    """Why an operation is made, so its result can be recorded (and followed up) correctly."""

    op: BlockOp
    target_calendar_id: int
    desired: DesiredBlock | None = None
    existing: ExistingBlock | None = None


class BlockApplier:
    """Runs a plan's operations, one batch stream per account, and keeps busy_block rows in step.

    One group of operations is at the provider while the answers of the last are recorded (the
    provider is used by one thread at a time). Rows of blocks new to calsync are inserted in
    bulk as the plan ends, in the sync's transaction as before: the sync commits them with the
    rest, and until then a crash leaves blocks whose ids are calsync's (or whose marks name
    their keys), which the next full pass meets and adopts, never duplicates.
    """

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
        # Rows of blocks new to calsync, by key: inserted together as the plan ends.
        self._new: dict[BlockKey, dict[str, Any]] = {}

    def apply(self, plan: BusyBlockPlan, orphans: Sequence[tuple[int, str]] = ()) -> None:
        """Apply `plan`, and delete `orphans` ((target, block id) of blocks nobody wants)."""
        # Which key each block id stands for as the plan starts: a create answered with one of
        # them met a block calsync keeps for another key (see _met_another).
        self._held = {(t, row.provider_event_id): key for (t, key), row in self._rows.items()}
        intents: list[_Intent] = []
        for desired in plan.creates:
            intents.append(self._create(desired))
        for existing, desired in plan.patches:
            version = self._version(existing)
            intents.append(self._update(existing.provider_event_id, desired, existing, version))
        for existing in plan.deletes:
            delete = self._delete(existing.target_calendar_id, existing.provider_event_id, existing)
            if existing.user_deleted:
                self._forget(delete)  # the user already deleted it: only our record is left
            else:
                intents.append(delete)
        for target_id, block_id in orphans:
            intents.append(self._delete(target_id, block_id, None))
        for existing, desired in plan.restamps:
            self._restamp(existing, desired)
        if plan.preserved:
            count = len(plan.preserved)
            self._report.note(f"preserved {count} user modification{'s' if count > 1 else ''}")
        self._report.blocks_total += len(intents)
        if intents:
            self._report.progress("writing")
        # Follow-ups (exists -> read -> update; an update of a vanished block -> create) are
        # bounded.
        for round_ in range(3):
            if not intents:
                break
            intents = self._run(intents, counted=round_ == 0)
        self._insert_new()

    def _insert_new(self) -> None:
        if not self._new:
            return
        # Pending deletes and re-keyed rows first: a new row may take a key one of them freed.
        self._session.flush()
        self._session.execute(sa.insert(BusyBlock), list(self._new.values()))
        self._new.clear()

    # -- intents ------------------------------------------------------------------------------

    def _provider_calendar(self, target_id: int) -> str:
        return self._calendars[target_id].provider_calendar_id

    def _create(self, desired: DesiredBlock, existing: ExistingBlock | None = None) -> _Intent:
        op = BlockOp(
            BlockAction.CREATE,
            self._provider_calendar(desired.target_calendar_id),
            block_id=desired.provider_event_id,
            content=desired.content,
            digest=desired.digest,
        )
        return _Intent(op, desired.target_calendar_id, desired=desired, existing=existing)

    def _update(
        self,
        block_id: str,
        desired: DesiredBlock,
        existing: ExistingBlock | None,
        version: str | None = None,
    ) -> _Intent:
        """An update, conditional on `version` (If-Match) when known: a block changed by hand
        since that version is the person's, and is not overwritten (domain.md)."""
        op = BlockOp(
            BlockAction.UPDATE,
            self._provider_calendar(desired.target_calendar_id),
            block_id=block_id,
            content=desired.content,
            digest=desired.digest,
            version=version,
        )
        return _Intent(op, desired.target_calendar_id, desired=desired, existing=existing)

    def _version(self, existing: ExistingBlock) -> str | None:
        """The version of the block calsync last wrote or read (its row's etag)."""
        row = self._rows.get((existing.target_calendar_id, existing.source_key))
        if row is None or row.provider_event_id != existing.provider_event_id:
            return None
        return row.etag

    def _delete(self, target_id: int, block_id: str, existing: ExistingBlock | None) -> _Intent:
        op = BlockOp(BlockAction.DELETE, self._provider_calendar(target_id), block_id=block_id)
        return _Intent(op, target_id, existing=existing)

    def _run(self, intents: list[_Intent], *, counted: bool) -> list[_Intent]:
        by_account: dict[int, list[_Intent]] = defaultdict(list)
        for intent in intents:
            by_account[self._calendars[intent.target_calendar_id].account_id].append(intent)
        # In chunks (a multiple of every provider's batch size, so no extra call), each
        # reported as done: a first sync of a big calendar shows its progress.
        groups = [
            (account_id, intents_of_account[first : first + PROGRESS_CHUNK])
            for account_id, intents_of_account in by_account.items()
            for first in range(0, len(intents_of_account), PROGRESS_CHUNK)
        ]
        follow_ups: list[_Intent] = []
        # One group at the provider while this thread records the answers of the one before:
        # the provider's wait and calsync's bookkeeping overlap.
        with ThreadPoolExecutor(1, thread_name_prefix="block-writes") as sender:
            sent: tuple[list[_Intent], Future[list[BlockResult]]] | None = None
            try:
                for account_id, group in groups:
                    try:
                        provider = self._providers.get(self._accounts[account_id])
                    except ProviderError as error:
                        if error.kind is ErrorKind.AUTH:
                            raise
                        failed: Future[list[BlockResult]] = Future()
                        failed.set_result(self._refused(group, error))
                        following = (group, failed)
                    else:
                        following = (group, sender.submit(self._send, provider, group))
                    if sent is not None:
                        follow_ups.extend(self._collect(*sent, counted=counted))
                    sent = following
                if sent is not None:
                    follow_ups.extend(self._collect(*sent, counted=counted))
            finally:
                sender.shutdown(cancel_futures=True)
        return follow_ups

    def _send(self, provider: Provider, group: list[_Intent]) -> list[BlockResult]:
        """One group's operations at the provider (in the sender's thread: no database)."""
        try:
            return provider.apply([intent.op for intent in group])
        except ProviderError as error:
            if error.kind is ErrorKind.AUTH:
                raise  # the engine marks that account; its calendars stop syncing
            return self._refused(group, error)

    @staticmethod
    def _refused(group: list[_Intent], error: ProviderError) -> list[BlockResult]:
        # One account the provider refuses outright fails no other account's writes.
        return [BlockResult(intent.op, error=error) for intent in group]

    def _collect(
        self, group: list[_Intent], sent: Future[list[BlockResult]], *, counted: bool
    ) -> list[_Intent]:
        follow_ups: list[_Intent] = []
        for intent, result in zip(group, sent.result(), strict=True):
            follow_ups.extend(self._record(intent, result))
        if counted:  # follow-ups finish what was counted already
            self._report.blocks_done += len(group)
            self._report.progress("writing")
        return follow_ups

    # -- results ------------------------------------------------------------------------------

    def _record(self, intent: _Intent, result: BlockResult) -> list[_Intent]:
        action = intent.op.action
        error = result.error
        if error is None:
            if action is BlockAction.DELETE:
                self._forget(intent)
                self._report.blocks_deleted += 1
            elif action is BlockAction.READ:
                return self._after_conflict(intent, result.block)
            elif self._met_another(intent, result.block):
                # Graph answers a repeated transactionId with the first block: here one moved
                # to another key (the planner's moves). This block is written without it.
                assert intent.desired is not None
                op = dataclasses.replace(intent.op, digest=None)
                return [dataclasses.replace(intent, op=op)]
            elif self._remember(intent, result.block):
                if action is BlockAction.CREATE:
                    self._report.blocks_created += 1
                else:
                    self._report.blocks_updated += 1
            return []
        if action is BlockAction.DELETE and error.kind is ErrorKind.GONE:
            self._forget(intent)  # already gone: that is what we wanted
            return []
        if (
            action is BlockAction.CREATE
            and error.kind is ErrorKind.EXISTS
            and intent.desired
            and intent.op.block_id is not None
        ):
            # The chosen id exists (a retry after a crash, or a block deleted by hand): read
            # it, and update only if it differs.
            read = BlockOp(BlockAction.READ, intent.op.calendar_id, block_id=intent.op.block_id)
            return [
                _Intent(
                    read,
                    intent.target_calendar_id,
                    desired=intent.desired,
                    existing=intent.existing,
                )
            ]
        if action is BlockAction.UPDATE and error.kind is ErrorKind.GONE and intent.desired:
            # (a moved block's row goes with it: ``existing`` names the key it had)
            return [self._create(intent.desired, intent.existing)]
        if action is BlockAction.UPDATE and error.kind is ErrorKind.STALE:
            # Changed since calsync wrote it, by the person: left as it is, and its row as it
            # was, so the target's next read finds the change and keeps it (user_modified).
            self._report.note("a block changed by hand since calsync wrote it was left as it is")
            return []
        if error.kind is ErrorKind.FORBIDDEN:
            calendar = self._calendars[intent.target_calendar_id]
            if not calendar.read_only:
                calendar.read_only = True
                self._session.add(calendar)
            self._report.note(f"{calendar.name} is read-only: it will receive no busy blocks")
            return []
        self._report.failed_writes += 1
        self._report.retryable = self._report.retryable or error.kind is ErrorKind.TRANSIENT
        self._report.note(f"{action.value} of a block failed: {error.detail or error.kind.value}")
        return []

    def _after_conflict(self, intent: _Intent, found: RemoteEvent | None) -> list[_Intent]:
        desired = intent.desired
        assert desired is not None
        assert intent.op.block_id is not None
        if found is not None and not found.cancelled and found.is_block:
            standing = ExistingBlock(
                target_calendar_id=desired.target_calendar_id,
                source_calendar_id=desired.source_calendar_id,
                source_key=desired.source_key,
                provider_event_id=found.id,
                summary=found.title,
                start=found.start,
                end=found.end,
            )
            if block_matches(standing, desired):
                self._remember(intent, found)  # already right: no write needed
                self._report.blocks_created += 1
                return []
        version = found.version if found is not None and not found.cancelled else None
        return [self._update(intent.op.block_id, desired, intent.existing, version)]

    def _met_another(self, intent: _Intent, block: RemoteEvent | None) -> bool:
        """Whether a create where the provider gives ids answered with a block calsync keeps
        under another key."""
        desired = intent.desired
        if intent.op.action is not BlockAction.CREATE or intent.op.digest is None:
            return False
        if block is None or desired is None or intent.op.block_id is not None:
            return False
        held = self._held.get((intent.target_calendar_id, block.id))
        return held is not None and held != desired.source_key

    def _remember(self, intent: _Intent, block: RemoteEvent | None) -> bool:
        """Record the block as written; False when its id is still unknown (a provider that
        assigns ids answered a create without one): nothing is recorded, the write is counted
        as failed, and the full reconcile adopts the block by its mark."""
        desired = intent.desired
        assert desired is not None
        block_id = block.id if block is not None else intent.op.block_id
        if block_id is None:
            self._report.failed_writes += 1
            self._report.note("a block was written but its id is not known yet")
            return False
        key = (desired.target_calendar_id, desired.source_key)
        moved = intent.existing
        if moved is not None and moved.source_key != desired.source_key and key not in self._rows:
            # A merged block moved to its group's new key (the planner's moves): its row is
            # re-keyed, never left behind under the old key nor written twice.
            row = self._rows.pop((moved.target_calendar_id, moved.source_key), None)
            if row is not None:
                row.source_key = desired.source_key
                self._rows[key] = row
        values: dict[str, Any] = {
            "source_calendar_id": desired.source_calendar_id,
            "source_event_id": self._event_ids.get(
                (desired.source_calendar_id, desired.source_provider_event_id)
            ),
            "provider_event_id": block_id,
            "etag": block.version if block is not None else None,
            "summary": desired.summary,
            "start": stored.encode_time(desired.start),
            "end": stored.encode_time(desired.end),
            "start_at": desired.start_at,
            "end_at": desired.end_at,
            "user_modified": False,
            "user_deleted": False,
            "source_fingerprint": desired.fingerprint,
            "member_sources": list(desired.member_sources) or None,
            "updated_at": self._now,
            # The sync writing it: explain names it (SyncLog.sync_key).
            "sync_key": self._report.sync_key,
        }
        row = self._rows.get(key)
        if row is None:
            # A block new to calsync: its row goes in with the others as the plan ends (an
            # ORM object per block cost more than the block's write).
            fresh = self._new.setdefault(
                key,
                {
                    "target_calendar_id": desired.target_calendar_id,
                    "source_key": desired.source_key,
                    "created_at": self._now,
                },
            )
            fresh.update(values)
            return True
        for name, value in values.items():
            setattr(row, name, value)
        self._session.add(row)
        return True

    def _restamp(self, existing: ExistingBlock, desired: DesiredBlock) -> None:
        """A block that shows what is wanted, whose row names too few of its members' sources
        (written before they were kept): the row learns them, nothing is sent."""
        row = self._rows.get((existing.target_calendar_id, existing.source_key))
        if row is None or row.provider_event_id != existing.provider_event_id:
            return
        row.member_sources = list(desired.member_sources) or None
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
