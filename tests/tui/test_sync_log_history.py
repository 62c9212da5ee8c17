"""How the loaded sync logs merge pages, reloads and live syncs: no gap, no duplicate, newest
first (pure: pages made here as the API makes them)."""

from __future__ import annotations

from datetime import UTC, datetime

from calsync_tui.sync_log_history import SyncLogHistory
from shared.domain import SyncKind, SyncStatus
from shared.schemas import SyncLogOut, SyncLogPage

NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)


def log(log_id: int, calendar_id: int = 1, status: SyncStatus = SyncStatus.SUCCESS) -> SyncLogOut:
    return SyncLogOut(
        id=log_id,
        calendar_id=calendar_id,
        kind=SyncKind.POLLING,
        trigger="poll",
        status=status,
        started_at=NOW,
        finished_at=NOW,
        events_fetched=0,
        events_created=0,
        events_updated=0,
        events_deleted=0,
        blocks_created=0,
        blocks_updated=0,
        blocks_deleted=0,
        provider_calls=1,
        retries=0,
        notes=[],
        error=None,
    )


def page(*, before: int | None, limit: int, all_ids: list[int]) -> SyncLogPage:
    """What GET /sync-logs answers: `limit` ids below `before`, newest first, and a cursor
    (here simply the last id as text) when there are more."""
    newest_first = sorted((i for i in all_ids if before is None or i < before), reverse=True)
    items = newest_first[:limit]
    more = len(newest_first) > limit
    return SyncLogPage(items=[log(i) for i in items], next_cursor=str(items[-1]) if more else None)


def ids(history: SyncLogHistory) -> list[int]:
    return [entry.id for entry in history.entries]


def load_everything(history: SyncLogHistory, all_ids: list[int]) -> None:
    while history.older is not None:
        cursor = history.older
        assert history.add_older(page(before=int(cursor), limit=3, all_ids=all_ids), cursor)


def test_pages_join_up_to_the_oldest_entry() -> None:
    all_ids = list(range(1, 11))
    history = SyncLogHistory()
    history.newest(page(before=None, limit=3, all_ids=all_ids))
    assert ids(history) == [10, 9, 8]
    assert not history.complete
    load_everything(history, all_ids)
    assert ids(history) == list(range(10, 0, -1))
    assert history.complete


def test_a_reload_keeps_older_pages_when_it_joins_up_and_starts_again_after_a_gap() -> None:
    all_ids = list(range(1, 11))
    history = SyncLogHistory()
    history.newest(page(before=None, limit=3, all_ids=all_ids))
    load_everything(history, all_ids)
    # Two new syncs: the newest page (12, 11, 10) joins what is loaded.
    all_ids += [11, 12]
    history.newest(page(before=None, limit=3, all_ids=all_ids))
    assert ids(history) == list(range(12, 0, -1))
    assert history.complete
    # Five more while away: the newest page (17, 16, 15) does not reach 12, so the loaded
    # entries go (they would leave 14 and 13 out) and paging starts again.
    all_ids += [13, 14, 15, 16, 17]
    history.newest(page(before=None, limit=3, all_ids=all_ids))
    assert ids(history) == [17, 16, 15]
    assert history.older == "15"
    load_everything(history, all_ids)
    assert ids(history) == list(range(17, 0, -1))


def test_an_older_page_asked_for_before_a_restart_is_ignored() -> None:
    all_ids = list(range(1, 11))
    history = SyncLogHistory()
    history.newest(page(before=None, limit=3, all_ids=all_ids))
    asked = history.older
    assert asked is not None
    all_ids += list(range(11, 20))
    history.newest(page(before=None, limit=3, all_ids=all_ids))  # a gap: restarted
    late = page(before=int(asked), limit=3, all_ids=all_ids)
    assert not history.add_older(late, asked)
    assert ids(history) == [19, 18, 17]


def test_live_syncs_join_the_top_and_replace_their_running_entry() -> None:
    all_ids = list(range(1, 11))
    history = SyncLogHistory()
    history.newest(page(before=None, limit=3, all_ids=all_ids))
    history.entries[0] = log(10, status=SyncStatus.ERROR)
    history.finished([log(11), log(10), log(2)])
    # 2 is older than anything loaded: it comes with its page, not as a lone row after 8.
    assert ids(history) == [11, 10, 9, 8]
    assert history.entries[1].status is SyncStatus.SUCCESS


def test_entries_of_calendars_gone_are_dropped_on_reload() -> None:
    history = SyncLogHistory()
    history.newest(SyncLogPage(items=[log(3, 1), log(2, 2), log(1, 1)], next_cursor=None), [1])
    assert ids(history) == [3, 1]
