"""Property tests of the rules a user chooses: every combination of title filters, tentative,
already-invited, working hours and merging keeps domain.md's invariant as an independent oracle
restates it; plans are idempotent; merged blocks never overlap; a rule change reaches the new
invariant with the fewest writes.

The oracle works from the generated specs, not the planner's helpers: working hours by
stepping through the quarter hours of an event and asking the target's clock (every time in
these scenarios lies on the quarter-hour grid, in every zone), merging by linking every pair of
pieces that overlap or touch (the planner sweeps sorted pieces instead).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from calsync_server.sync.planner import (
    BusyBlockPlan,
    CalendarView,
    DesiredBlock,
    ExistingBlock,
    SourceEvent,
    plan_busy_blocks,
    source_key,
)
from calsync_server.sync.rules import CalendarRules, TitleFilter, WorkingHours
from calsync_server.sync.stored import encode_time
from shared.domain import BusyTitle, CalendarRole
from tests.sync.builders import google_ids, remote
from tests.sync.test_planner_properties import (
    BASES,
    PROPERTY_SETTINGS,
    ZONES,
    EventSpec,
    _timed_object,
    apply_plan,
    copies,
    event_ids,
    event_specs,
    spec_blocks,
)

QUARTER = timedelta(minutes=15)
# Plain words match whole words; /.../ is a regular expression.
PLAIN = ("standup", "zahnarzt", "busy")
REGEXES = ("/^s/", "/🦷$/", "/ARZT/")
# Range ends away from 01:00-04:00, where the zones here change their clocks: a range end the
# clock skips or shows twice has its own example test.
STARTS = (0, 30, 4 * 60, 8 * 60 + 30, 9 * 60, 13 * 60 + 30)
ENDS = (12 * 60, 17 * 60, 18 * 60 + 30, 22 * 60, 24 * 60)
# Titles where plain words and substrings differ ("Standups" is not the word "standup").
TITLES = (None, "Standup", "Standups", "stand-up standup", "Zahnarzt 🦷", "Busy day", "busybody")
ADDRESSES: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"me@example.com"}),
    frozenset({"other@example.com"}),
)


@dataclass(frozen=True)
class World:
    now: datetime
    time_zone: str
    horizon_days: int
    calendars: tuple[CalendarView, ...]
    specs: tuple[EventSpec, ...]

    @property
    def by_id(self) -> dict[int, CalendarView]:
        return {c.id: c for c in self.calendars}

    def with_rules(self, rules: dict[int, CalendarRules]) -> World:
        views = tuple(dataclasses.replace(c, rules=rules[c.id]) for c in self.calendars)
        return dataclasses.replace(self, calendars=views)

    def events(self) -> list[SourceEvent]:
        zone = {c.id: c.time_zone for c in self.calendars}
        return [
            SourceEvent(
                spec.calendar_id,
                remote(spec.resource(), zone[spec.calendar_id]),
                spec.is_deleted,
                time_zone=zone[spec.calendar_id],
            )
            for spec in self.specs
        ]

    def plan(self, existing: list[ExistingBlock]) -> BusyBlockPlan:
        return plan_busy_blocks(
            self.calendars,
            self.events(),
            existing,
            now=self.now,
            time_zone=self.time_zone,
            horizon_days=self.horizon_days,
            block_id=google_ids,
        )


@st.composite
def rule_sets(draw: st.DrawFn) -> CalendarRules:
    # Include patterns leave most events out: drawn less often, so other rules have work.
    some = draw(st.integers(0, 3)) == 0
    includes = st.lists(st.sampled_from(PLAIN + REGEXES), max_size=1 if some else 0)
    excludes = st.lists(st.sampled_from(PLAIN + REGEXES), max_size=1)
    hours = None
    if draw(st.booleans()):
        start = draw(st.sampled_from(STARTS))
        end = draw(st.sampled_from([e for e in ENDS if e > start]))
        days = draw(st.frozensets(st.integers(0, 6), min_size=1))
        hours = WorkingHours(days, start, end)
    return CalendarRules(
        titles=TitleFilter(tuple(draw(includes)), tuple(draw(excludes))),
        block_tentative=draw(st.booleans()),
        working_hours=hours,
        skip_invited=draw(st.booleans()),
        merge=draw(st.booleans()),
    )


@st.composite
def dense_specs(
    draw: st.DrawFn, calendar_id: int, zone: str, now: datetime, horizon_days: int, event_id: str
) -> EventSpec:
    """Events that mostly block, close together (so they overlap and touch), on the grid;
    the planner's own properties draw the rarer shapes (stubs, declined, calsync's blocks)."""
    spec = draw(event_specs(calendar_id, zone, now, horizon_days, event_id))
    if spec.all_day:
        return dataclasses.replace(
            spec,
            stub=False,
            is_deleted=False,
            busy_block=False,
            summary=draw(st.sampled_from(TITLES)),
        )
    start_at = now + QUARTER * draw(st.integers(-8, horizon_days * 96))
    end_at = start_at + QUARTER * draw(st.sampled_from((0, 1, 2, 4, 6, 8, 12, 40, 100, 144)))
    style = draw(st.sampled_from(("utc", "local", "offset")))
    event_zone = draw(st.sampled_from(ZONES))
    return dataclasses.replace(
        spec,
        stub=False,
        is_deleted=False,
        busy_block=False,
        status=None,
        transparency=None,
        event_type=None,
        self_response=draw(st.sampled_from((None, None, "needsAction", "tentative", "accepted"))),
        summary=draw(st.sampled_from(TITLES)),
        start=_timed_object(start_at, style, event_zone),
        end=_timed_object(end_at, style, event_zone),
        start_at=start_at,
        end_at=end_at,
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]]:
    """A user's world on the quarter-hour grid, and two choices of rules for it."""
    now = draw(st.sampled_from(BASES)) + QUARTER * draw(st.integers(0, 4 * 24 * 4))
    horizon_days = draw(st.integers(1, 3))
    calendars = []
    for n in range(1, draw(st.integers(2, 4)) + 1):
        calendars.append(
            CalendarView(
                id=n,
                user_id=1,
                provider_calendar_id=f"cal{n}@example.com",
                sync_enabled=draw(st.integers(0, 9)) > 0,
                role=draw(st.sampled_from((CalendarRole.BOTH,) * 3 + tuple(CalendarRole))),
                busy_title=draw(st.sampled_from(list(BusyTitle))),
                include_all_day=draw(st.booleans()),
                read_only=draw(st.integers(0, 9)) == 0,
                account_active=draw(st.integers(0, 9)) > 0,
                time_zone=draw(st.sampled_from(ZONES)),
                addresses=draw(st.sampled_from(ADDRESSES)),
            )
        )
    specs: list[EventSpec] = []
    for calendar in calendars:
        specs += [
            draw(dense_specs(calendar.id, calendar.time_zone, now, horizon_days, event_id))
            for event_id in draw(event_ids(min_size=1, max_size=6))
        ]
    world = World(now, draw(st.sampled_from(ZONES)), horizon_days, tuple(calendars), tuple(specs))
    before = {c.id: draw(rule_sets()) for c in calendars}
    after = {c.id: draw(rule_sets()) for c in calendars}
    return world, before, after


# -- the oracle --------------------------------------------------------------------------------


def title_matches(pattern: str, title: str) -> bool:
    if pattern.startswith("/"):
        return re.search(pattern[1:-1], title, re.IGNORECASE) is not None
    return pattern in re.findall(r"\w+", title.lower())


def passes_source_rules(spec: EventSpec, rules: CalendarRules) -> bool:
    title = spec.summary or ""
    if any(title_matches(p, title) for p in rules.titles.exclude):
        return False
    if rules.titles.include and not any(title_matches(p, title) for p in rules.titles.include):
        return False
    return rules.block_tentative or spec.self_response not in ("tentative", "needsAction")


def invited(spec: EventSpec, target: CalendarView) -> bool:
    # EventSpec.resource() invites other@example.com and me@example.com with a response.
    attendees = {"other@example.com", "me@example.com"} if spec.self_response else set()
    return target.rules.skip_invited and bool(attendees & target.addresses)


def inside(moment: datetime, hours: WorkingHours, zone: str) -> bool:
    local = moment.astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    return local.weekday() in hours.days and hours.start <= minute < hours.end


def runs(
    start: datetime, end: datetime, hours: WorkingHours, zone: str
) -> Iterator[list[datetime]]:
    """The maximal runs of quarter hours of [start, end) inside working hours (run start, end)."""
    current: list[datetime] | None = None
    moment = start
    while moment < end:
        if inside(moment, hours, zone):
            if current is None:
                current = [moment, moment + QUARTER]
            else:
                current[1] = moment + QUARTER
        elif current is not None:
            yield current
            current = None
        moment += QUARTER
    if current is not None:
        yield current


Shown = tuple[object, object, str]  # (start, end, title): instants, or days when all-day
Found = tuple[datetime, datetime, str, bool, EventSpec]  # a piece: start, end, title, all-day


def expected(world: World) -> dict[int, Counter[Shown]]:
    """Each writable target's future blocks, as the user sees them, under the world's rules."""
    zone = ZoneInfo(world.time_zone)
    today = world.now.astimezone(zone).date()
    last = today + timedelta(days=world.horizon_days)
    window = (_midnight(today, world.time_zone), _midnight(last, world.time_zone))
    by_id = world.by_id
    second = copies(world)  # type: ignore[arg-type]
    pieces: dict[int, list[Found]] = defaultdict(list)
    for spec in world.specs:
        source = by_id[spec.calendar_id]
        if not (
            source.id not in second
            and source.sync_enabled
            and source.role in (CalendarRole.SOURCE, CalendarRole.BOTH)
            and source.account_active
            and spec_blocks(spec, source, window)
            and passes_source_rules(spec, source.rules)
        ):
            continue
        text = (spec.summary or "").strip()
        title = f"Busy - {text}" if source.busy_title is BusyTitle.TITLE and text else "Busy"
        for target in world.calendars:
            if not (
                target.id != source.id
                and target.id not in second
                and target.user_id == source.user_id
                and target.sync_enabled
                and target.role in (CalendarRole.TARGET, CalendarRole.BOTH)
                and not target.read_only
                and target.account_active
                and not invited(spec, target)
            ):
                continue
            hours = target.rules.working_hours
            if hours is None:
                pieces[target.id].append((spec.start_at, spec.end_at, title, spec.all_day, spec))
                continue
            for low, high in runs(spec.start_at, spec.end_at, hours, target.time_zone):
                pieces[target.id].append((low, high, title, False, spec))
    shown: dict[int, Counter[Shown]] = {}
    for target_id, found in pieces.items():
        counter: Counter[Shown] = Counter()
        target = by_id[target_id]
        timed = [p for p in found if not p[3]]
        for _, _, title, all_day, spec in found:
            if all_day:
                counter[(spec.start["date"], spec.end["date"], title)] += 1
        if target.rules.merge:
            for group in linked(timed):
                titles = {p[2] for p in group}
                title = titles.pop() if len(titles) == 1 else "Busy"
                counter[(min(p[0] for p in group), max(p[1] for p in group), title)] += 1
        else:
            counter.update((low, high, title) for low, high, title, _, _ in timed)
        shown[target_id] = Counter(
            {s: n for s, n in counter.items() if not _ended(s, world, target)}
        )
    return shown


def linked(pieces: list[Found]) -> list[list[Found]]:
    """Connected groups of pieces, two pieces linked when they overlap or touch."""
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, a in enumerate(pieces):
        for j, b in enumerate(pieces):
            if a[0] <= b[1] and b[0] <= a[1]:
                parent[root(i)] = root(j)
    groups: dict[int, list[Found]] = defaultdict(list)
    for i, piece in enumerate(pieces):
        groups[root(i)].append(piece)
    return list(groups.values())


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


def _ended(shown: Shown, world: World, target: CalendarView) -> bool:
    end = shown[1]
    if isinstance(end, str):
        return _midnight(date.fromisoformat(end), target.time_zone) <= world.now
    assert isinstance(end, datetime)
    return end <= world.now


def actual(world: World, blocks: list[ExistingBlock]) -> dict[int, Counter[Shown]]:
    """What each writable target shows of calsync's future blocks after the writes."""
    by_id = world.by_id
    shown: dict[int, Counter[Shown]] = defaultdict(Counter)
    for block in blocks:
        target = by_id[block.target_calendar_id]
        assert block.start is not None
        assert block.end is not None
        if block.start.all_day:
            item: Shown = (str(block.start.day), str(block.end.day), block.summary)
        else:
            item = (block.start.to_utc(), block.end.to_utc(), block.summary)
        if not _ended(item, world, target):
            shown[target.id][item] += 1
    return {t: c for t, c in shown.items() if c}


def future(world: World, blocks: list[ExistingBlock]) -> list[tuple[int, str, str]]:
    """Where each block that has not ended stands: target, source key, id."""
    return sorted(
        (b.target_calendar_id, b.source_key, b.provider_event_id)
        for b in blocks
        if b.end_at is None or b.end_at > world.now
    )


def shown_places(world: World, blocks: list[ExistingBlock]) -> list[tuple[object, ...]]:
    """What each block that has not ended shows, and where: target, source key, content."""
    return sorted(
        (b.target_calendar_id, b.source_key, b.summary, encode_time(b.start), encode_time(b.end))
        for b in blocks
        if b.end_at is None or b.end_at > world.now
    )


def place(block: ExistingBlock | DesiredBlock) -> tuple[int, str]:
    return (block.target_calendar_id, block.source_key)


def settle(
    world: World, existing: list[ExistingBlock]
) -> tuple[BusyBlockPlan, list[ExistingBlock]]:
    plan = world.plan(existing)
    return plan, apply_plan(existing, plan)


# -- properties --------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(worlds())
def test_every_combination_of_rules_keeps_the_invariant(
    drawn: tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]],
) -> None:
    world, rules, _ = drawn
    world = world.with_rules(rules)

    _, after = settle(world, [])

    assert actual(world, after) == {t: c for t, c in expected(world).items() if c}


@PROPERTY_SETTINGS
@given(worlds())
def test_a_rule_change_reaches_the_new_invariant_with_the_fewest_writes(
    drawn: tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]],
) -> None:
    world, before, after_rules = drawn
    _, state = settle(world.with_rules(before), [])
    changed = world.with_rules(after_rules)

    plan, after = settle(changed, state)

    assert actual(changed, after) == {t: c for t, c in expected(changed).items() if c}
    # Fewest writes: no block that already shows what is wanted is touched, and no place is
    # both deleted and created (that would be a patch).
    final = {place(b): b for b in after}
    for block in state:
        same = final.get(place(block))
        if same is not None and (same.summary, same.start, same.end) == (
            block.summary,
            block.start,
            block.end,
        ):
            assert block not in plan.deletes
            assert block not in [b for b, _ in plan.patches]
    assert not {place(b) for b in plan.deletes} & {place(d) for d in plan.creates}
    # Nor is a merged block deleted while a block is created over its time in its target
    # (merging turned off, a member gone): one of the blocks it splits into takes it over.
    for block in plan.deletes:
        if not block.member_sources or block.user_deleted or block.end_at is None:
            continue
        assert block.start is not None
        low, high = block.start.to_utc(), block.end_at
        assert not [
            d
            for d in plan.creates
            if d.target_calendar_id == block.target_calendar_id
            and d.start_at <= high
            and low <= d.end_at
        ], "a merged block deleted while a block is created over its time"
    # Identity follows content: changing the rules back gives back the very blocks. Where a
    # target merges, a block may have moved to a merged block's key (planner moves): the same
    # places then show the same, though a block may stand under another block's id.
    _, back = settle(world.with_rules(before), after)
    if not any(r.merge for r in (*before.values(), *after_rules.values())):
        assert future(world, back) == future(world, state)
    assert shown_places(world, back) == shown_places(world, state)


@PROPERTY_SETTINGS
@given(worlds())
def test_planning_again_with_rules_changes_nothing(
    drawn: tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]],
) -> None:
    world, before, after_rules = drawn
    _, state = settle(world.with_rules(before), [])
    changed = world.with_rules(after_rules)
    _, after = settle(changed, state)

    assert changed.plan(after).is_empty


@PROPERTY_SETTINGS
@given(worlds())
def test_merged_blocks_never_overlap_nor_touch(
    drawn: tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]],
) -> None:
    world, rules, _ = drawn
    world = world.with_rules(rules)

    _, after = settle(world, [])

    by_target: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for block in after:
        assert block.start is not None
        assert block.end is not None
        if world.by_id[block.target_calendar_id].rules.merge and not block.start.all_day:
            by_target[block.target_calendar_id].append((block.start.to_utc(), block.end.to_utc()))
    for spans in by_target.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end < start, spans
    # Never two blocks at one place, merged or not.
    assert max(Counter(place(b) for b in after).values(), default=0) <= 1


@PROPERTY_SETTINGS
@given(worlds())
def test_without_merging_each_event_can_be_planned_alone(
    drawn: tuple[World, dict[int, CalendarRules], dict[int, CalendarRules]],
) -> None:
    # The engine plans only the events a change touched (and their blocks, found by the
    # event's key and the keys of its later pieces): without merging, slices agree with the
    # whole.
    world, before, after_rules = drawn
    _, state = settle(world.with_rules(before), [])
    rules = {cid: dataclasses.replace(r, merge=False) for cid, r in after_rules.items()}
    changed = world.with_rules(rules)
    whole = changed.plan(state)

    def origin(key: str) -> str:
        return key.split(":")[0]

    parts: list[BusyBlockPlan] = []
    events = changed.events()
    keys = {origin(b.source_key) for b in state}
    by_key: dict[str, list[SourceEvent]] = defaultdict(list)
    for event in events:
        key = source_key(changed.by_id[event.calendar_id], event.event.id)
        by_key[key].append(event)
        keys.add(key)
    for key in keys:
        parts.append(
            plan_busy_blocks(
                changed.calendars,
                by_key[key],
                [b for b in state if origin(b.source_key) == key],
                now=changed.now,
                time_zone=changed.time_zone,
                horizon_days=changed.horizon_days,
                block_id=google_ids,
            )
        )

    # A merged block left from before merging was turned off is moved onto one of the blocks
    # it splits into by the whole plan (one update); planned alone, its key's slice deletes
    # it and the event's slice creates that block. The engine plans the whole user after a
    # rule change (a full pass), and a slice never holds a merged block's key.
    moved = [(b, d) for b, d in whole.patches if b.member_sources and b.source_key != d.source_key]
    patched = [b for b, d in whole.patches if (b, d) not in moved]
    creates = [*whole.creates, *(d for _, d in moved)]
    deletes = [*whole.deletes, *(b for b, _ in moved)]
    assert sorted(place(d) for p in parts for d in p.creates) == sorted(map(place, creates))
    assert sorted(place(b) for p in parts for b, _ in p.patches) == sorted(map(place, patched))
    assert sorted(place(b) for p in parts for b in p.deletes) == sorted(map(place, deletes))


def _chain_spec(calendar_id: int, event_id: str, start_at: datetime, end_at: datetime) -> EventSpec:
    return EventSpec(
        calendar_id=calendar_id,
        event_id=event_id,
        stub=False,
        status=None,
        transparency=None,
        event_type=None,
        self_response=None,
        busy_block=False,
        summary=None,
        is_deleted=False,
        start=_timed_object(start_at, "utc", "UTC"),
        end=_timed_object(end_at, "utc", "UTC"),
        start_at=start_at,
        end_at=end_at,
        all_day=False,
    )


@st.composite
def merged_groups(draw: st.DrawFn) -> tuple[World, EventSpec]:
    """A merging target and three sources whose back-to-back events make one merged block,
    and one more event (of any source) that overlaps or touches it."""
    now = draw(st.sampled_from(BASES))
    views = [
        CalendarView(
            id=n,
            user_id=1,
            provider_calendar_id=f"cal{n}@example.com",
            sync_enabled=True,
            role=CalendarRole.TARGET if n == 1 else CalendarRole.SOURCE,
            busy_title=BusyTitle.PRIVATE,
            include_all_day=False,
            read_only=False,
            account_active=True,
            rules=CalendarRules(merge=True) if n == 1 else CalendarRules(),
        )
        for n in range(1, 5)
    ]
    start = now + QUARTER * draw(st.integers(4, 96))
    specs: list[EventSpec] = []
    at = start
    for n, length in enumerate(draw(st.lists(st.integers(1, 8), min_size=2, max_size=6))):
        specs.append(_chain_spec(draw(st.integers(2, 4)), f"ev{n}", at, at + QUARTER * length))
        at += QUARTER * length
    low = start + QUARTER * draw(st.integers(-4, (at - start) // QUARTER))
    high = max(low, start) + QUARTER * draw(st.integers(0, 8))
    joiner = _chain_spec(draw(st.integers(2, 4)), "joiner", low, high)
    world = World(now, "UTC", 3, tuple(views), tuple(specs))
    return world, joiner


@PROPERTY_SETTINGS
@given(merged_groups())
def test_a_member_joining_or_leaving_a_merged_block_costs_one_update(
    drawn: tuple[World, EventSpec],
) -> None:
    """Sources synced one after another, or an event added or deleted: the merged block it
    joins or leaves is rewritten in place (its id kept), never deleted and created again."""
    without, joiner = drawn
    with_it = dataclasses.replace(without, specs=(*without.specs, joiner))
    for first, then in ((without, with_it), (with_it, without)):
        _, state = settle(first, [])
        assert len(state) == 1  # one merged block
        plan, after = settle(then, state)

        assert not plan.creates
        assert not plan.deletes
        assert [b for b, _ in plan.patches] == state
        assert [b.provider_event_id for b in after] == [state[0].provider_event_id]
        assert after[0].source_key != state[0].source_key
        assert actual(then, after) == {t: c for t, c in expected(then).items() if c}
        assert then.plan(after).is_empty


@st.composite
def sign_outs(
    draw: st.DrawFn,
) -> tuple[World, dict[int, CalendarRules], int, bool, dict[str, int]]:
    """A world whose targets merge, the source whose account then needs sign-in, whether its
    events or the others' were synced first, and how many quarter hours each event moves while
    it is signed out (0: stays)."""
    world, rules, _ = draw(worlds())
    merging = {cid: dataclasses.replace(r, merge=True) for cid, r in rules.items()}
    signed_out = draw(st.sampled_from([c.id for c in world.calendars]))
    shifts = {
        f"{spec.calendar_id}/{spec.event_id}": draw(st.sampled_from((0, 0, -4, 2, 8, 40, 96)))
        for spec in world.specs
    }
    return world, merging, signed_out, draw(st.booleans()), shifts


def moved_by(world: World, shifts: dict[str, int], frozen: int) -> World:
    """The world after each event of a calendar other than ``frozen`` moved by its shift."""
    specs = []
    for spec in world.specs:
        by = QUARTER * shifts[f"{spec.calendar_id}/{spec.event_id}"]
        if spec.calendar_id == frozen or not by or spec.all_day:
            specs.append(spec)
            continue
        start_at, end_at = spec.start_at + by, spec.end_at + by
        specs.append(
            dataclasses.replace(
                spec,
                start=_timed_object(start_at, "utc", "UTC"),
                end=_timed_object(end_at, "utc", "UTC"),
                start_at=start_at,
                end_at=end_at,
            )
        )
    return dataclasses.replace(world, specs=tuple(specs))


def with_account(world: World, calendar_id: int, *, active: bool) -> World:
    views = tuple(
        dataclasses.replace(c, account_active=active) if c.id == calendar_id else c
        for c in world.calendars
    )
    return dataclasses.replace(world, calendars=views)


@PROPERTY_SETTINGS
@given(sign_outs())
def test_a_refused_login_mid_run_deletes_no_merged_block_and_signing_in_settles(
    drawn: tuple[World, dict[int, CalendarRules], int, bool, dict[str, int]],
) -> None:
    """Targets merge; a source's login is refused after its blocks were written (the other
    sources' events may move meanwhile), then it signs in again. While it is signed out, every
    block standing for it (a merged block: whichever member its row names) stays as it was and
    no create meets a block's id (apply_plan asserts it); signed in again, the invariant.

    Its events and the others' are synced one after the other first, as sources' first syncs
    come: merged blocks are then single blocks moved in place, holding a member's block id."""
    world, rules, frozen, frozen_first, shifts = drawn
    world = world.with_rules(rules)
    first = tuple(s for s in world.specs if (s.calendar_id == frozen) == frozen_first)
    _, state = settle(dataclasses.replace(world, specs=first), [])
    _, state = settle(world, state)
    out = with_account(world, frozen, active=False)

    for then in (out, moved_by(out, shifts, frozen)):
        _, after = settle(then, state)

        for block in state:
            if frozen in block.sources:
                assert block in after, block  # the very block: not deleted, moved or patched
        assert max(Counter(place(b) for b in after).values(), default=0) <= 1
        assert then.plan(after).is_empty
        state = after

    back = with_account(moved_by(world, shifts, frozen), frozen, active=True)
    _, settled = settle(back, state)

    assert actual(back, settled) == {t: c for t, c in expected(back).items() if c}
    assert back.plan(settled).is_empty
