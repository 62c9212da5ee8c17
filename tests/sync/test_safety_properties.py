"""Property tests of the safety catch's decision (sync/safety.py), a pure function: it never
holds deletes below the line, always holds them above it (after a sudden drop), holds only the
dropped source's deletes, and never holds a plan's creates or updates hostage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from calsync_server.providers.model import ChangeSet, EventTime, RemoteEvent
from calsync_server.sync.planner import BusyBlockPlan, DesiredBlock, ExistingBlock
from calsync_server.sync.safety import (
    MIN_HELD,
    crosses_line,
    hold_deletes,
    may_drop,
    read_dropped,
)

NOW = datetime(2024, 6, 10, 8, 0, tzinfo=UTC)
SOURCES = (1, 2)
TARGETS = (3, 4, 5)


def _block(
    n: int, source: int, target: int, *, ended: bool, by_hand: bool, merged: bool = False
) -> ExistingBlock:
    """``merged``: a block standing for both sources, ``source`` its first member's."""
    start = NOW + timedelta(hours=n - (100 if ended else 0))
    return ExistingBlock(
        target_calendar_id=target,
        source_calendar_id=source,
        source_key=f"key-{n}",
        provider_event_id=f"block-{n}",
        summary="Busy",
        start=EventTime.at(start),
        end=EventTime.at(start + timedelta(minutes=30)),
        end_at=start + timedelta(minutes=30),
        user_deleted=by_hand,
        member_sources=SOURCES if merged else (),
    )


def _desired(n: int, target: int) -> DesiredBlock:
    start = NOW + timedelta(hours=n)
    return DesiredBlock(
        target_calendar_id=target,
        source_calendar_id=1,
        source_provider_event_id=f"e{n}",
        source_key=f"new-{n}",
        digest=f"{n:040x}",
        provider_event_id=None,
        summary="Busy",
        start=EventTime.at(start),
        end=EventTime.at(start + timedelta(hours=1)),
        start_at=start,
        end_at=start + timedelta(hours=1),
        fingerprint="f",
    )


@st.composite
def plans(draw: st.DrawFn) -> tuple[BusyBlockPlan, dict[int, int], set[int]]:
    deletes = [
        _block(
            n,
            # Mostly one pair, so that the line is often crossed.
            draw(st.sampled_from((1, 1, 1, 2))),
            draw(st.sampled_from((3, 3, 3, 4, 5))),
            ended=draw(st.integers(0, 9)) == 0,
            by_hand=draw(st.integers(0, 9)) == 0,
            merged=draw(st.integers(0, 3)) == 0,
        )
        for n in range(draw(st.integers(0, 60)))
    ]
    creates = tuple(_desired(1000 + n, draw(st.sampled_from(TARGETS))) for n in range(5))
    old = _block(2000, 1, 3, ended=False, by_hand=False)
    plan = BusyBlockPlan(
        creates=creates, patches=((old, _desired(2000, 3)),), deletes=tuple(deletes)
    )
    future = {t: draw(st.integers(0, 60)) for t in TARGETS}
    holding = set(draw(st.sets(st.sampled_from(SOURCES))))
    return plan, future, holding


def _counted(plan: BusyBlockPlan, holding: set[int]) -> dict[tuple[int, int], int]:
    """The oracle's count: the real deletes of future blocks per (holding source, target), a
    merged block's counted for every source it stands for (not only its first member's)."""
    counts: dict[tuple[int, int], int] = {}
    for b in plan.deletes:
        members = {b.source_calendar_id, *b.member_sources}
        if b.user_deleted or not b.end_at or b.end_at <= NOW:
            continue
        for source in members & holding:
            key = (source, b.target_calendar_id)
            counts[key] = counts.get(key, 0) + 1
    return counts


@settings(max_examples=300, deadline=None)
@given(plans())
def test_holds_exactly_the_deletes_over_the_line_and_nothing_else(
    drawn: tuple[BusyBlockPlan, dict[int, int], set[int]],
) -> None:
    plan, future, holding = drawn

    kept, held = hold_deletes(plan, holding, future, NOW)

    # Creates and updates always go ahead: nothing is held hostage.
    assert kept.creates == plan.creates
    assert kept.patches == plan.patches
    # Every delete is either kept or held, never both, never lost.
    # A merged block held for both of its sources is one delete.
    held_blocks = list(
        {id(b): b for ts in held.blocks.values() for bs in ts.values() for b in bs}.values()
    )
    assert held.count == len(held_blocks)
    assert sorted(kept.deletes + tuple(held_blocks), key=lambda b: b.source_key) == sorted(
        plan.deletes, key=lambda b: b.source_key
    )
    for (source, target), n in _counted(plan, holding).items():
        over = n >= MIN_HELD and 2 * n > future[target]
        assert (target in held.of(source)) == over
        if over:
            assert len(held.of(source)[target]) == n
    # Only holding sources, only real deletes of blocks still to come.
    for b in held_blocks:
        assert {b.source_calendar_id, *b.member_sources} & holding
        assert not b.user_deleted
        assert b.end_at is not None
        assert b.end_at > NOW


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_the_line(deletes: int, future: int) -> None:
    assert crosses_line(deletes, future) == (deletes >= MIN_HELD and deletes > future / 2)
    if deletes < MIN_HELD or 2 * deletes <= future:
        assert not crosses_line(deletes, future)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_sudden_drop(before: int, after: int) -> None:
    dropped = read_dropped(before, after)
    assert dropped == (before - after >= MIN_HELD and after < before / 2)
    if after >= before:
        assert not dropped  # a read that grew or stayed is never a drop


@settings(max_examples=200, deadline=None)
@given(
    removed=st.integers(0, 2 * MIN_HELD),
    cancelled=st.integers(0, 2 * MIN_HELD),
    others=st.integers(0, 5),
    before=st.integers(0, 200),
    added=st.integers(0, 20),
)
def test_a_read_not_weighed_can_never_be_a_sudden_drop(
    removed: int, cancelled: int, others: int, before: int, added: int
) -> None:
    # The engine counts a calendar's live events around a read only when may_drop says so:
    # every read it skips must be one read_dropped could never call a drop, whatever the
    # counts (each removal or cancellation takes at most one live event; others add).
    at = EventTime.at(NOW)
    events = tuple(RemoteEvent(f"c{n}", at, at, cancelled=True) for n in range(cancelled))
    events += tuple(RemoteEvent(f"e{n}", at, at) for n in range(others))
    changes = ChangeSet(events=events, removed=tuple(f"r{n}" for n in range(removed)))
    lost = min(before, removed + cancelled)
    after = before - lost + added
    if not may_drop(changes):
        assert not read_dropped(before, after)
    if read_dropped(before, after):
        assert may_drop(changes)


def test_a_full_read_or_a_series_sent_whole_is_always_weighed() -> None:
    # What they leave out is gone: one such read may lose every event.
    assert may_drop(ChangeSet(full=True))
    assert may_drop(ChangeSet(series_replaced=("series",)))
    assert not may_drop(ChangeSet(removed=tuple(f"r{n}" for n in range(MIN_HELD - 1))))
