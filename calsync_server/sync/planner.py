"""The pure busy-block planner: from calendars, events and existing blocks to a BusyBlockPlan.

Plan, then apply (vdirsyncer's way): nothing here talks to a provider, a database or the clock;
the applier executes the plan. The rules are domain.md's "Which events block", "What a busy
block looks like", "The invariant", the switches and hand edits that bend it, and the rules the
user chooses per calendar (rules.py: filters, working hours, already invited, merged blocks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from calsync_server.providers.model import EventTime, Response
from calsync_server.sync import plan_types, stored
from calsync_server.sync import rules as rule
from calsync_server.sync.moves import Span, moves
from calsync_server.sync.rules import Piece, Removed
from calsync_server.sync.verdicts import Outcome, PlanTrace, Verdict
from shared.domain import BusyTitle

# The planner's types live in plan_types.py; the engine and the tests know them by these names.
CalendarView = plan_types.CalendarView
SourceEvent = plan_types.SourceEvent
ExistingBlock = plan_types.ExistingBlock
DesiredBlock = plan_types.DesiredBlock
BusyBlockPlan = plan_types.BusyBlockPlan

BUSY = rule.BUSY
# Keeps "Busy - <title>" within the busy_block.summary column (1100 characters).
MAX_TITLE_CHARS = 1024

Window = tuple[datetime, datetime]
# (target calendar id, identity digest) -> the id the target's provider gives that block, or
# None where the provider assigns ids (known once the create answers). Pure: no I/O.
BlockIdentity = Callable[[int, str], str | None]


def _sha256(*parts: str) -> bytes:
    # JSON keeps the parts apart: ("a", "bc") and ("ab", "c") never hash alike.
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).digest()


def source_key(source: CalendarView, provider_event_id: str) -> str:
    """Stable opaque key of (source calendar, instance id): 64 hex characters, never the title."""
    return _sha256("source", source.provider_calendar_id, provider_event_id).hex()


def block_digest(target: CalendarView, key: str) -> str:
    """The identity of the block for ``key`` in ``target`` (40 hex characters, 160 bits).

    Deterministic, so that a provider that takes client ids turns it into the block's id (a
    second create then meets the first) and one that does not uses it as its idempotency key.
    """
    return _sha256("block", target.provider_calendar_id, key)[:20].hex()


def block_fingerprint(summary: str, start: EventTime, end: EventTime) -> str:
    """Hash of what a block shows, to tell a changed source from a block the user deleted."""
    return stored.fingerprint(summary, stored.encode_time(start), stored.encode_time(end))


def shows_same_time(actual: EventTime | None, wanted: EventTime | None) -> bool:
    """Whether a block's start/end (``actual``) shows the time calsync wants (``wanted``).

    Compared as instants, not text: providers rewrite times into the calendar's offset. A zone
    calsync asked for must be kept; one the provider added on its own is ignored.
    """
    if actual is None or wanted is None:
        return actual is None and wanted is None
    if actual.all_day or wanted.all_day:
        return actual.all_day and wanted.all_day and actual.day == wanted.day
    if wanted.zone is not None and actual.zone != wanted.zone:
        return False
    return actual.same_time(wanted)


def block_title(source: CalendarView, summary: str | None) -> str:
    """``Busy``, or ``Busy - <title>`` when the source shows titles and the event has one."""
    title = (summary or "").strip()[:MAX_TITLE_CHARS]
    if source.busy_title is BusyTitle.TITLE and title:
        return f"{BUSY} - {title}"
    return BUSY


def sync_window(now: datetime, time_zone: str, horizon_days: int) -> Window:
    """From the start of today in ``time_zone`` to ``horizon_days`` local days later, in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    zone = ZoneInfo(time_zone)
    today = now.astimezone(zone).date()
    start = datetime.combine(today, time(0), zone)
    end = datetime.combine(today + timedelta(days=horizon_days), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def event_verdict(event: SourceEvent, source: CalendarView, window: Window) -> Verdict:
    """Whether an event instance makes the user busy (domain.md "Which events block"), and
    if not, the first rule that said no."""
    remote = event.event
    if event.is_deleted:
        return Verdict.DELETED
    if not source.role.is_source:
        return Verdict.NOT_A_SOURCE
    if remote.cancelled:
        return Verdict.CANCELLED
    if not remote.busy:
        return Verdict.FREE
    if remote.response is Response.DECLINED:
        return Verdict.DECLINED
    if not remote.kind.blocks:
        return Verdict.KIND
    # Loop prevention: a busy block is never a source, whatever its title says.
    if remote.is_block:
        return Verdict.CALSYNC_BLOCK
    if remote.all_day and not source.include_all_day:
        return Verdict.ALL_DAY
    window_start, window_end = window
    if not (event.start_at < window_end and event.end_at > window_start):
        return Verdict.OUTSIDE_WINDOW
    return Verdict.BLOCKS


def is_blocking(event: SourceEvent, source: CalendarView, window: Window) -> bool:
    """Whether an event instance makes the user busy (domain.md "Which events block")."""
    return event_verdict(event, source, window) is Verdict.BLOCKS


def desired_block(piece: Piece, target: CalendarView, block_id: BlockIdentity) -> DesiredBlock:
    """The block ``target`` should hold for one piece of blocking time (rules.pieces). An
    all-day block's instants are its days in the target calendar's zone (`_end_in`): they are
    what it is stored, kept, held and purged by."""
    digest = block_digest(target, piece.key)
    start_at, end_at = piece.start_at, piece.end_at
    if piece.start.all_day:
        start_at, end_at = piece.start.to_utc(target.time_zone), piece.end.to_utc(target.time_zone)
    return DesiredBlock(
        target_calendar_id=target.id,
        source_calendar_id=piece.source_calendar_id,
        source_provider_event_id=piece.source_event_id,
        source_key=piece.key,
        digest=digest,
        provider_event_id=block_id(target.id, digest),
        summary=piece.title,
        start=piece.start,
        end=piece.end,
        start_at=start_at,
        end_at=end_at,
        fingerprint=block_fingerprint(piece.title, piece.start, piece.end),
        member_sources=piece.member_sources,
    )


def _alternative_digest(target: CalendarView, key: str, attempt: int) -> str:
    """The identity of the block for ``key`` in ``target`` when the usual one's id is held by
    another block there: deterministic, so a retry meets the block it wrote."""
    return _sha256("block", target.provider_calendar_id, key, str(attempt))[:20].hex()


def free_identity(
    wanted: DesiredBlock,
    target: CalendarView,
    held: Callable[[str], bool],
    block_id: BlockIdentity,
) -> DesiredBlock:
    """``wanted`` with an identity whose id is not ``held`` (by a block under another key in
    its target): the first of its usual digest and then its alternatives.

    Why: a block keeps its id when it is moved to another key (a merged block a member joined
    or left, planner moves), so the id a create is given may stand for another key's block,
    which a create must never meet: the provider would answer "exists" and the block be
    written over, and its row insert would hit UNIQUE(target_calendar_id, provider_event_id).
    The choice depends only on the plan's inputs, so a retry after a crash picks the same id
    and meets (adopts) its own block. Where the provider assigns ids nothing is held against
    the digest here; the applier re-sends a create Graph answers with a block kept under
    another key without its transaction id.
    """
    attempt = 0
    digest, found = wanted.digest, wanted.provider_event_id
    while found is not None and held(found):
        attempt += 1
        digest = _alternative_digest(target, wanted.source_key, attempt)
        found = block_id(target.id, digest)
    if attempt == 0:
        return wanted
    return dataclasses.replace(wanted, digest=digest, provider_event_id=found)


def _signed_out(block: ExistingBlock, calendars: Mapping[int, CalendarView]) -> bool:
    """Whether a source the block stands for (a merged block: any member's) has an account
    that needs sign-in, or events that could not be planned this time. A member calendar no
    longer known (disconnected) counts for nothing."""
    return any(
        (view := calendars.get(cid)) is not None and (not view.account_active or view.unplannable)
        for cid in block.sources
    )


def block_matches(block: ExistingBlock, desired: DesiredBlock) -> bool:
    """Whether an existing block already shows what ``desired`` wants (times as instants)."""
    return (
        block.summary == desired.summary
        and shows_same_time(block.start, desired.start)
        and shows_same_time(block.end, desired.end)
    )


def _end_in(
    target: CalendarView, end: EventTime | None, end_at: datetime | None
) -> datetime | None:
    """When a block ends where the person sees it: an all-day block at midnight in the target
    calendar's zone (its day lasts until then there, whatever zone its source's instants were
    read in), any other at its instant."""
    if end is not None and end.all_day:
        return end.to_utc(target.time_zone)
    if end_at is not None:
        return end_at
    return end.to_utc() if end is not None else None


def _block_span(block: ExistingBlock, target: CalendarView) -> Span | None:
    end = _end_in(target, block.end, block.end_at)
    if block.start is None or end is None:
        return None
    return block.start.to_utc(target.time_zone), end


def _has_ended(
    target: CalendarView, end: EventTime | None, end_at: datetime | None, now: datetime
) -> bool:
    at = _end_in(target, end, end_at)
    return at is not None and at <= now


def _is_history(
    target: CalendarView, block: ExistingBlock, wanted: DesiredBlock, now: datetime
) -> bool:
    """Both the block and what is wanted of it have ended in the target: not rewritten."""
    return _has_ended(target, block.end, block.end_at, now) and _has_ended(
        target, wanted.end, wanted.end_at, now
    )


def second_copies(calendars: Iterable[CalendarView]) -> dict[int, CalendarView]:
    """Calendars that are another account's view of a calendar some other copy syncs, with the
    copy that speaks for each (domain.md: one calendar through two accounts is one calendar).

    The copy with sync on and the lowest id speaks; every other copy of it (on or off) neither
    gives nor receives blocks, and the blocks seen in it are left alone: they are the same
    provider events as the speaking copy's. With no copy on, there is nothing to share.
    """
    ordered = sorted(calendars, key=lambda c: c.id)
    first: dict[tuple[int, str], CalendarView] = {}
    for calendar in ordered:
        if calendar.sync_enabled:
            first.setdefault((calendar.user_id, calendar.provider_calendar_id), calendar)
    return {
        calendar.id: speaker
        for calendar in ordered
        if (speaker := first.get((calendar.user_id, calendar.provider_calendar_id))) is not None
        and speaker.id != calendar.id
    }


def _calendar(calendars: Mapping[int, CalendarView], calendar_id: int) -> CalendarView:
    try:
        return calendars[calendar_id]
    except KeyError:
        raise ValueError(f"calendar {calendar_id} is referenced but was not passed") from None


def plan_busy_blocks(
    calendars: Iterable[CalendarView],
    events: Iterable[SourceEvent],
    existing: Iterable[ExistingBlock],
    *,
    now: datetime,
    time_zone: str,
    horizon_days: int,
    block_id: BlockIdentity,
    trace: PlanTrace | None = None,
) -> BusyBlockPlan:
    """Plan the writes that restore domain.md's invariant for the source keys passed.

    The caller passes, for every source key in scope, all its events and all its existing
    blocks, plus every calendar they refer to and every calendar of their users (the possible
    targets). An existing block whose source event is not among ``events`` is an orphan.
    ``trace``, when given, is filled with why each event blocks or not and what each place
    gets (verdicts.py): explain and the dry run read it.
    """
    window = sync_window(now, time_zone, horizon_days)
    by_id = {calendar.id: calendar for calendar in calendars}
    copies = second_copies(by_id.values())
    targets_of_user: dict[int, list[CalendarView]] = defaultdict(list)
    for calendar in sorted(by_id.values(), key=lambda c: c.id):
        if calendar.receives_blocks and calendar.id not in copies:
            targets_of_user[calendar.user_id].append(calendar)

    found: dict[int, list[Piece]] = defaultdict(list)
    removed: dict[Removed, set[tuple[int, str]]] = defaultdict(set)
    seen: set[tuple[int, str]] = set()
    for event in events:
        source = _calendar(by_id, event.calendar_id)
        if not source.gives_blocks or source.id in copies:
            if trace is not None:
                trace.sources[source_key(source, event.event.id)] = Verdict.NOT_A_SOURCE
            continue
        key = source_key(source, event.event.id)
        # One giving calendar per user and provider calendar (second_copies), and one row per
        # calendar and event id (the event table's unique key): only a caller's bug repeats.
        if (source.user_id, key) in seen:
            raise ValueError(f"event {event.event.id!r} passed twice")
        seen.add((source.user_id, key))
        verdict = event_verdict(event, source, window)
        remote = event.event
        why = rule.source_removes(source.rules, remote) if verdict is Verdict.BLOCKS else None
        if why is not None:
            removed[why].add((source.user_id, key))
            verdict = Verdict(why.value)
        if trace is not None:
            trace.sources[key] = verdict
        if verdict is not Verdict.BLOCKS:
            continue
        title = block_title(source, remote.title)
        span = (event.start_at, event.end_at)
        for target in targets_of_user[source.user_id]:
            at = (target.id, key)
            if target.id == source.id:
                if trace is not None:
                    trace.targets[at] = Verdict.SAME_CALENDAR
                continue
            if rule.invited_there(target.rules, target.addresses, remote):
                removed[Removed.INVITED].add((source.user_id, key))
                if trace is not None:
                    trace.targets[at] = Verdict.INVITED
                continue
            hours, zone = target.rules.working_hours, target.time_zone
            parts = rule.pieces(key, source.id, remote, title, span, hours, zone)
            if not parts:
                removed[Removed.HOURS].add((source.user_id, key))
            if trace is not None:
                trace.targets[at] = Verdict.BLOCKS if parts else Verdict.HOURS
                trace.blocks[at] = [p.key for p in parts]
            found[target.id] += parts

    desired: dict[tuple[int, str], DesiredBlock] = {}
    members = merged = 0
    for target_id, parts in found.items():
        target = by_id[target_id]
        if target.rules.merge:
            given = parts
            parts, in_merged, made = rule.merge(parts)
            members, merged = members + in_merged, merged + made
            if trace is not None:
                trace.merged(target_id, given, parts)
        for piece in parts:
            desired[(target_id, piece.key)] = desired_block(piece, target, block_id)

    blocks_at: dict[tuple[int, str], list[ExistingBlock]] = defaultdict(list)
    for block in existing:
        _calendar(by_id, block.target_calendar_id)
        _calendar(by_id, block.source_calendar_id)
        blocks_at[(block.target_calendar_id, block.source_key)].append(block)

    creates: list[DesiredBlock] = []
    patches: list[tuple[ExistingBlock, DesiredBlock]] = []
    deletes: list[ExistingBlock] = []
    preserved: list[ExistingBlock] = []
    # Blocks to delete and blocks to create, that moves() may pair as updates.
    vacated: list[tuple[ExistingBlock, Span]] = []
    fresh: list[DesiredBlock] = []

    restamps: list[tuple[ExistingBlock, DesiredBlock]] = []
    # Per merging target, the blocks left standing for a signed-out source, with their spans.
    standing: dict[int, list[tuple[Span, ExistingBlock]]] = defaultdict(list)

    def settle_unwanted(block: ExistingBlock) -> Outcome:
        """A block no blocking instance asks for: deleted unless a rule says leave it."""
        target = by_id[block.target_calendar_id]
        if not target.is_writable_target or target.id in copies:
            # calsync cannot write there; or it is the same calendar as one synced through
            # another account, whose blocks these are too (same provider events).
            return Outcome.LEFT
        if target.keeps_blocks_while_off:
            return Outcome.LEFT
        if not target.receives_blocks:
            # No longer a target (sync off, role source): the user is tidying up, and every
            # calsync block goes, past ones and hand-edited ones included (domain.md).
            deletes.append(block)
        elif block.user_modified:
            preserved.append(block)
            return Outcome.PRESERVED
        elif _has_ended(target, block.end, block.end_at, now):
            return Outcome.HISTORY  # history stays while the target stays a target
        elif _signed_out(block, by_id):
            # A source whose account lost its login deletes no block: for a merged block, any
            # member's source (the row's own source is only its first member's). In a target
            # that merges, the block may stand for other sources' events too: they count as
            # covered by it.
            held = _block_span(block, target)
            if target.rules.merge and held is not None:
                standing[target.id].append((held, block))
            return Outcome.LEFT
        else:
            deletes.append(block)
        return Outcome.DELETE

    for place in sorted(desired.keys() | blocks_at.keys()):
        wanted = desired.get(place)
        expected_id = wanted.provider_event_id if wanted is not None else None
        # One block stands for the place: a live one before a tombstone, the user's edit
        # before ours, the deterministic id before another; the rest are duplicates.
        candidates = sorted(
            blocks_at.get(place, ()),
            key=lambda b: (
                b.user_deleted,
                not b.user_modified,
                b.provider_event_id != expected_id,
                b.provider_event_id,
            ),
        )
        primary = candidates[0] if candidates else None
        for duplicate in candidates[1:]:
            settle_unwanted(duplicate)
        outcome = Outcome.MATCHES
        if wanted is None:
            if primary is not None:
                outcome = settle_unwanted(primary)
                target, held = by_id[place[0]], _block_span(primary, by_id[place[0]])
                movable = target.receives_blocks and not primary.user_deleted
                if outcome is Outcome.DELETE and movable and held is not None:
                    vacated.append((primary, held))
        elif primary is None:
            creates.append(wanted)
            outcome = Outcome.CREATE
            fresh.append(wanted)
        elif primary.user_modified:
            preserved.append(primary)
            outcome = Outcome.PRESERVED
        elif primary.user_deleted:
            # Deleted by hand: stays deleted until the source shows something new.
            outcome = Outcome.HAND_DELETED
            if primary.source_fingerprint != wanted.fingerprint:
                creates.append(wanted)
                outcome = Outcome.CREATE
        elif block_matches(primary, wanted):
            if primary.member_sources != wanted.member_sources:
                restamps.append((primary, wanted))  # the row learns its members
        elif _is_history(by_id[place[0]], primary, wanted, now):
            outcome = Outcome.HISTORY  # history on both sides: not rewritten
        else:
            patches.append((primary, wanted))
            outcome = Outcome.UPDATE
        if trace is not None:
            trace.outcomes[place] = outcome

    # A merged block left standing for a signed-out source covers the other members it spans:
    # a block of their own would lie under it twice (and may be given the id the merged block,
    # moved in place from it, holds).
    def under_standing(wanted: DesiredBlock) -> ExistingBlock | None:
        for (low, high), block in standing.get(wanted.target_calendar_id, ()):
            if low <= wanted.start_at and wanted.end_at <= high:
                return block
        return None

    if standing:
        covered = {id(d): cover for d in creates if (cover := under_standing(d)) is not None}
        creates = [d for d in creates if id(d) not in covered]
        fresh = [d for d in fresh if id(d) not in covered]
        if trace is not None:
            cover_key: dict[tuple[int, str], str] = {}
            for d in desired.values():
                cover = covered.get(id(d))
                if cover is not None:
                    trace.outcomes[(d.target_calendar_id, d.source_key)] = Outcome.LEFT
                    cover_key[(d.target_calendar_id, d.source_key)] = cover.source_key
            # Explain names the block that stands for the event's time there.
            for (tid, key), keys in trace.blocks.items():
                named = [cover_key.get((tid, k), k) for k in keys]
                trace.blocks[(tid, key)] = list(dict.fromkeys(named))

    # A merged block a member joined or left is moved to its new key: one update, not a delete
    # and a create (the block keeps its provider id; the applier re-keys its row). So is a
    # block holding the id a create would be given (merging turned off again).
    claimed = {(d.target_calendar_id, d.provider_event_id or "") for d in creates}
    merging = {c.id for c in by_id.values() if c.rules.merge}
    paired = moves(vacated, fresh, claimed, merging)
    gone = {id(block) for block, _ in paired} | {id(wanted) for _, wanted in paired}
    creates = [d for d in creates if id(d) not in gone]
    deletes = [b for b in deletes if id(b) not in gone]
    patches += paired
    if trace is not None:
        for block, wanted in paired:
            trace.outcomes[(block.target_calendar_id, block.source_key)] = Outcome.UPDATE
            trace.outcomes[(wanted.target_calendar_id, wanted.source_key)] = Outcome.UPDATE

    # No create is given an id a block under another key holds (see free_identity): every
    # existing block counts, whatever the plan does with it, since a delete and a create of
    # one id in one batch may reach the provider in either order.
    holders: dict[tuple[int, str], set[str]] = defaultdict(set)  # (target, id) -> keys
    for (target_id, key), blocks in blocks_at.items():
        for block in blocks:
            holders[(target_id, block.provider_event_id)].add(key)

    def held_elsewhere(wanted: DesiredBlock) -> Callable[[str], bool]:
        def held(given: str) -> bool:
            keys = holders.get((wanted.target_calendar_id, given), set())
            return bool(keys - {wanted.source_key})

        return held

    creates = [
        free_identity(d, by_id[d.target_calendar_id], held_elsewhere(d), block_id) for d in creates
    ]

    def block_order(block: ExistingBlock) -> tuple[int, str, str]:
        return (block.target_calendar_id, block.source_key, block.provider_event_id)

    return BusyBlockPlan(
        creates=tuple(sorted(creates, key=lambda d: (d.target_calendar_id, d.source_key))),
        patches=tuple(sorted(patches, key=lambda pair: block_order(pair[0]))),
        deletes=tuple(sorted(deletes, key=block_order)),
        preserved=tuple(sorted(preserved, key=block_order)),
        restamps=tuple(sorted(restamps, key=lambda pair: block_order(pair[0]))),
        removed=tuple((why, len(removed[why])) for why in Removed if removed[why]),
        merged=(members, merged),
    )
