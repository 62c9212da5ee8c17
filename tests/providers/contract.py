"""The contract every provider keeps, run once per provider through its driver.

vdirsyncer's storage tests are the model: one class of behaviours, subclassed per provider
with a ``driver`` fixture (tests/support/drivers/). The driver acts as the person directly in
the provider; the provider under test is calsync's, speaking calsync's own types. Times are
fixed instants: nothing here depends on when it runs.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest

from calsync_server.providers.model import (
    BlockAction,
    BlockContent,
    BlockOp,
    BlockResult,
    ChangeSet,
    ErrorKind,
    EventTime,
    ProviderError,
    RemoteEvent,
    Response,
)
from tests.support.drivers.base import Driver, PersonEvent

# A Monday far from any daylight-saving change in the zones the drivers use.
BASE = datetime(2027, 2, 1, tzinfo=UTC)
WINDOW = (BASE, BASE + timedelta(days=14))


def at(hour: float, day: int = 0) -> datetime:
    return BASE + timedelta(days=day, hours=hour)


def digest_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:40]


class Calendar:
    """What calsync would hold of a calendar after applying change sets the way the engine must:
    a full read replaces everything, a replaced series drops its old instances, a removed id
    drops the event (or the whole series it names), a cancelled instance is gone."""

    def __init__(self) -> None:
        self.events: dict[str, RemoteEvent] = {}

    def apply(self, changes: ChangeSet) -> ChangeSet:
        if changes.full:
            self.events.clear()
        for series in changes.series_replaced:
            self._drop_series(series)
        for removed in changes.removed:
            self.events.pop(removed, None)
            self._drop_series(removed)
        for event in changes.events:
            if event.cancelled:
                self.events.pop(event.id, None)
            else:
                self.events[event.id] = event
        return changes

    def _drop_series(self, series: str) -> None:
        for key in [k for k, e in self.events.items() if e.series_id == series]:
            del self.events[key]

    def titled(self, title: str) -> list[RemoteEvent]:
        return sorted(
            (e for e in self.events.values() if e.title == title),
            key=lambda e: e.start.to_utc(),
        )

    def only(self, title: str) -> RemoteEvent:
        found = self.titled(title)
        assert len(found) == 1, f"{len(found)} events titled {title!r}: {found}"
        return found[0]


def block(
    calendar_id: str,
    name: str,
    *,
    title: str = "Busy",
    start: datetime | None = None,
    end: datetime | None = None,
    provider_block_id: str | None = None,
) -> BlockOp:
    content = BlockContent(
        title=title,
        start=EventTime.at(start or at(9)),
        end=EventTime.at(end or at(10)),
        source_key=f"source-{name}",
    )
    return BlockOp(
        BlockAction.CREATE,
        calendar_id,
        block_id=provider_block_id,
        content=content,
        digest=digest_of(name),
    )


class ProviderContract:
    """Behaviours calsync relies on, the same for every provider."""

    # -- reading -------------------------------------------------------------------------------

    def test_lists_its_calendars(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Contract work")
        provider = driver.provider()
        try:
            listed = {c.id: c for c in provider.list_calendars()}
        finally:
            provider.close()
        assert calendar_id in listed
        assert listed[calendar_id].name == "Contract work"
        assert listed[calendar_id].writable

    def test_full_then_incremental_changes(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Changes")
        standup = driver.add(calendar_id, PersonEvent("Standup", at(9), at(9.5)))
        provider = driver.provider()
        seen = Calendar()
        try:
            first = seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
            assert first.full
            assert first.cursor
            event = seen.only("Standup")
            assert event.id == standup or event.series_id == standup
            assert event.start.to_utc() == at(9)
            assert event.end.to_utc() == at(9.5)
            assert event.busy
            assert not event.cancelled
            assert not event.is_block

            driver.add(calendar_id, PersonEvent("Review", at(14), at(15)))
            driver.move(calendar_id, standup, at(10), at(10.5))
            second = seen.apply(
                provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
            )
            assert not second.full
            assert second.cursor
            assert seen.only("Review").start.to_utc() == at(14)
            assert seen.only("Standup").start.to_utc() == at(10)

            # Nothing changed: whatever comes again (Graph replays) is what was already seen.
            versions = {e.id: e.version for e in seen.events.values()}
            third = provider.read_changes(calendar_id, cursor=second.cursor, window=WINDOW)
            assert not third.removed
            assert {e.id: e.version for e in third.events}.items() <= versions.items()
        finally:
            provider.close()

    def test_a_deleted_event_goes(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Deletes")
        doomed = driver.add(calendar_id, PersonEvent("Dentist", at(11), at(12)))
        driver.add(calendar_id, PersonEvent("Kept", at(13), at(14)))
        provider = driver.provider()
        seen = Calendar()
        try:
            first = seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
            driver.delete(calendar_id, doomed)
            seen.apply(provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW))
        finally:
            provider.close()
        assert not seen.titled("Dentist")
        assert seen.only("Kept").start.to_utc() == at(13)

    def test_free_declined_and_all_day_are_told_apart(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Kinds")
        driver.add(calendar_id, PersonEvent("Gym", at(7), at(8), free=True))
        driver.add(calendar_id, PersonEvent("Offsite", date(2027, 2, 3), date(2027, 2, 4)))
        driver.add(calendar_id, PersonEvent("Pitch", at(15), at(16), declined=True))
        provider = driver.provider()
        seen = Calendar()
        try:
            seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
        finally:
            provider.close()
        assert not seen.only("Gym").busy
        offsite = seen.only("Offsite")
        assert offsite.all_day
        assert offsite.start.day == date(2027, 2, 3)
        assert offsite.end.day == date(2027, 2, 4)
        assert seen.only("Pitch").response is Response.DECLINED

    def test_a_recurring_series_comes_as_instances(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Series")
        series = driver.add(
            calendar_id, PersonEvent("Sync", at(9), at(9.5), recurrence="FREQ=DAILY;COUNT=3")
        )
        provider = driver.provider()
        seen = Calendar()
        try:
            first = seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
            instances = seen.titled("Sync")
            assert [e.start.to_utc() for e in instances] == [at(9, d) for d in range(3)]
            assert len({e.id for e in instances}) == 3
            assert {e.series_id for e in instances} == {series}

            driver.cancel_occurrence(calendar_id, series, at(9, 1))
            seen.apply(provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW))
        finally:
            provider.close()
        assert [e.start.to_utc() for e in seen.titled("Sync")] == [at(9, 0), at(9, 2)]

    def test_an_expired_cursor_says_so_and_a_full_read_follows(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Expiry")
        driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
        provider = driver.provider()
        try:
            first = provider.read_changes(calendar_id, cursor=None, window=WINDOW)
            driver.expire_cursor(calendar_id)
            with pytest.raises(ProviderError) as refused:
                provider.read_changes(calendar_id, cursor=first.cursor, window=WINDOW)
            assert refused.value.kind is ErrorKind.CURSOR_EXPIRED
            again = Calendar()
            again.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
        finally:
            provider.close()
        assert again.only("Call").start.to_utc() == at(9)

    # -- blocks --------------------------------------------------------------------------------

    def test_a_block_is_created_updated_and_deleted(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Blocks")
        provider = driver.provider()
        try:
            op = block(calendar_id, "one", provider_block_id=provider.block_id(digest_of("one")))
            [created] = provider.apply([op])
            made = _ok(created)
            assert made.block_source == "source-one"
            assert made.version
            [held] = _marked(driver, calendar_id)
            assert held["title"] == "Busy"
            assert held["start"] == at(9)
            assert held["end"] == at(10)

            moved = BlockContent("Busy - Review", EventTime.at(at(11)), EventTime.at(at(12)), "s")
            update = BlockOp(BlockAction.UPDATE, calendar_id, made.id, moved, version=made.version)
            updated = _ok(provider.apply([update])[0])
            assert updated.version != made.version
            [held] = _marked(driver, calendar_id)
            assert held["title"] == "Busy - Review"
            assert held["start"] == at(11)

            delete = BlockOp(BlockAction.DELETE, calendar_id, made.id)
            assert provider.apply([delete])[0].ok
            assert _marked(driver, calendar_id) == []
            # Deleting what is gone succeeds, or says GONE (which the engine counts as done).
            [again] = provider.apply([delete])
            assert again.ok or (again.error is not None and again.error.kind is ErrorKind.GONE)
        finally:
            provider.close()

    def test_creating_a_block_twice_gives_one(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Twice")
        provider = driver.provider()
        try:
            op = block(
                calendar_id, "twice", provider_block_id=provider.block_id(digest_of("twice"))
            )
            _ok(provider.apply([op])[0])
            [second] = provider.apply([op])
        finally:
            provider.close()
        assert second.ok or (second.error is not None and second.error.kind is ErrorKind.EXISTS)
        assert len(_marked(driver, calendar_id)) == 1

    def test_a_stale_version_is_refused(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Stale")
        provider = driver.provider()
        try:
            op = block(
                calendar_id, "stale", provider_block_id=provider.block_id(digest_of("stale"))
            )
            made = _ok(provider.apply([op])[0])
            assert op.content is not None
            later = BlockContent("Busy", EventTime.at(at(12)), EventTime.at(at(13)), "x")
            _ok(provider.apply([_update(calendar_id, made, later)])[0])
            [refused] = provider.apply([_update(calendar_id, made, op.content)])
        finally:
            provider.close()
        assert refused.error is not None
        assert refused.error.kind is ErrorKind.STALE
        [held] = _marked(driver, calendar_id)
        assert held["start"] == at(12)

    def test_blocks_are_found_by_the_mark_never_by_the_title(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Marks")
        driver.add(calendar_id, PersonEvent("Busy", at(9), at(10)))
        provider = driver.provider()
        try:
            op = block(
                calendar_id,
                "mark",
                title="Lunch",
                start=at(12),
                end=at(13),
                provider_block_id=provider.block_id(digest_of("mark")),
            )
            _ok(provider.apply([op])[0])
            found = provider.list_blocks(calendar_id, window=WINDOW)
        finally:
            provider.close()
        assert [(b.title, b.block_source) for b in found] == [("Lunch", "source-mark")]

    # -- failures ------------------------------------------------------------------------------

    def test_rate_limits_are_retried_after_retry_after(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Throttled")
        driver.add(calendar_id, PersonEvent("Call", at(9), at(10)))
        # The waits the provider asks for, recorded instead of taken. The Retry-After is longer
        # than any provider's own backoff for a first or second retry (at most 1 s), so a wait
        # this long is the provider honouring it.
        waits: list[float] = []
        provider = driver.provider(sleep=waits.append)
        try:
            driver.fail_next(ErrorKind.TRANSIENT, times=2, retry_after=1.5)
            seen = Calendar()
            seen.apply(provider.read_changes(calendar_id, cursor=None, window=WINDOW))
            retries = provider.stats.retries
        finally:
            provider.close()
        assert seen.only("Call").start.to_utc() == at(9)
        assert retries >= 2
        assert len(waits) == retries
        assert len([w for w in waits if w >= 1.5]) >= 2, f"Retry-After not honoured: {waits}"

    def test_a_refused_login_is_an_auth_failure(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Login")
        driver.refuse_login()
        provider = driver.provider()
        try:
            with pytest.raises(ProviderError) as refused:
                provider.read_changes(calendar_id, cursor=None, window=WINDOW)
        finally:
            provider.close()
        assert refused.value.kind is ErrorKind.AUTH

    def test_a_read_only_calendar_is_said_and_refuses_blocks(self, driver: Driver) -> None:
        calendar_id = driver.new_calendar("Shared with me", read_only=True)
        provider = driver.provider()
        try:
            listed = {c.id: c for c in provider.list_calendars()}
            op = block(calendar_id, "ro", provider_block_id=provider.block_id(digest_of("ro")))
            [refused] = provider.apply([op])
        finally:
            provider.close()
        assert not listed[calendar_id].writable
        assert refused.error is not None
        assert refused.error.kind is ErrorKind.FORBIDDEN


def _ok(result: BlockResult) -> RemoteEvent:
    assert result.error is None, f"{result.op.action} failed: {result.error}"
    assert result.block is not None
    return result.block


def _update(calendar_id: str, made: RemoteEvent, content: BlockContent) -> BlockOp:
    return BlockOp(BlockAction.UPDATE, calendar_id, made.id, content, version=made.version)


def _marked(driver: Driver, calendar_id: str) -> list[dict[str, object]]:
    return [e for e in driver.events(calendar_id) if e.get("mark")]
