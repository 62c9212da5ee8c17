"""Why: the planner's verdict on each event and target, and what it planned for each place, in
words a user reads (domain.md "Trust: every decision can be explained"). The planner fills a
PlanTrace as it plans, so explain and the dry run tell exactly what the plan did, by
construction: there is no second copy of the rules. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from calsync_server.sync.plan_types import CalendarView
from calsync_server.sync.rules import Piece


class Verdict(StrEnum):
    """Whether an event makes a block, and if not, the first rule that said no."""

    BLOCKS = "blocks"
    # Of the event.
    DELETED = "deleted"
    NOT_A_SOURCE = "not_a_source"
    CANCELLED = "cancelled"
    FREE = "free"
    DECLINED = "declined"
    KIND = "kind"
    CALSYNC_BLOCK = "calsync_block"
    ALL_DAY = "all_day"
    OUTSIDE_WINDOW = "outside_window"
    # The source's rules.
    TITLE = "title"
    TENTATIVE = "tentative"
    # Of one target.
    SAME_CALENDAR = "same_calendar"
    NOT_A_TARGET = "not_a_target"
    INVITED = "invited"
    HOURS = "hours"


REASONS = {
    Verdict.BLOCKS: "it makes you busy: a block stands for it",
    Verdict.DELETED: "the event was deleted (or no longer listed by its calendar)",
    Verdict.NOT_A_SOURCE: "its calendar gives no blocks (sync off, role target, login expired, "
    "or synced through another account)",
    Verdict.CANCELLED: "the event is cancelled",
    Verdict.FREE: 'the event shows as free ("available")',
    Verdict.DECLINED: "you declined it",
    Verdict.KIND: "its kind (working location, birthday) never blocks",
    Verdict.CALSYNC_BLOCK: "it is a busy block of calsync's: blocks are never mirrored",
    Verdict.ALL_DAY: "it is all-day and its calendar leaves all-day events out",
    Verdict.OUTSIDE_WINDOW: "it lies outside the sync window (today to the horizon)",
    Verdict.TITLE: "its title is left out by the calendar's title filters",
    Verdict.TENTATIVE: "it is tentative or unanswered, and the calendar leaves those out",
    Verdict.SAME_CALENDAR: "this is the event's own calendar",
    Verdict.NOT_A_TARGET: "this calendar receives no blocks",
    Verdict.INVITED: "the calendar's own account is invited: the meeting is there already",
    Verdict.HOURS: "it lies outside the calendar's working hours",
}


class Outcome(StrEnum):
    """What the plan does at one place (a target and a block's source key)."""

    MATCHES = "matches"  # the block stands and shows what calsync would write
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    PRESERVED = "preserved"  # edited by hand: left as the user made it
    HAND_DELETED = "hand_deleted"  # deleted by hand: not recreated while the source is unchanged
    HISTORY = "history"  # ended: left alone
    LEFT = "left"  # unwanted, but calsync may not touch it (cannot write, kept, login expired)


OUTCOME_WORDS = {
    Outcome.MATCHES: "in place, as calsync would write it now",
    Outcome.CREATE: "missing: the next sync creates it",
    Outcome.UPDATE: "differs from what calsync would write: the next sync updates it",
    Outcome.DELETE: "no longer wanted: the next sync deletes it",
    Outcome.PRESERVED: "changed by hand: left as you made it",
    Outcome.HAND_DELETED: "deleted by hand: not recreated while the event is unchanged",
    Outcome.HISTORY: "in the past: left alone as history",
    Outcome.LEFT: "no longer wanted, but left: calsync may not change this calendar now",
}

Place = tuple[int, str]  # (target calendar id, source key)


@dataclass(slots=True)
class PlanTrace:
    """What one planning found, filled by plan_busy_blocks when it is given one."""

    # source key -> the event's verdict (BLOCKS, or the first rule that said no).
    sources: dict[str, Verdict] = field(default_factory=dict)
    # (target, event's source key) -> BLOCKS or why not in that target.
    targets: dict[Place, Verdict] = field(default_factory=dict)
    # (target, event's source key) -> the keys of the blocks standing for it there (its pieces
    # under working hours, or the merged block it joined).
    blocks: dict[Place, list[str]] = field(default_factory=dict)
    # (target, block's source key) -> what the plan does there.
    outcomes: dict[Place, Outcome] = field(default_factory=dict)

    def merged(self, target_id: int, given: list[Piece], out: list[Piece]) -> None:
        """Point each event's pieces in ``target_id`` at the merged block that took them in:
        a merged piece's members are the given pieces inside its span (merge groups never
        touch each other)."""
        kept = {p.key for p in given}
        into: dict[str, str] = {}
        for made in out:
            if made.key in kept:
                continue
            for piece in given:
                timed = not piece.start.all_day
                if timed and made.start_at <= piece.start_at and piece.end_at <= made.end_at:
                    into[piece.key] = made.key
        for (tid, key), keys in self.blocks.items():
            if tid == target_id:
                self.blocks[(tid, key)] = list(dict.fromkeys(into.get(k, k) for k in keys))


def not_a_target_words(target: CalendarView, copy_of: CalendarView | None) -> str:
    """Why a calendar receives no blocks, from the same properties the planner reads."""
    if copy_of is not None:
        return f"the same calendar is synced through another account (calendar {copy_of.id})"
    if not target.sync_enabled:
        return "sync is off for this calendar"
    if not target.role.is_target:
        return "this calendar is a source only"
    if target.read_only:
        return "this calendar is read-only"
    if not target.account_active:
        return "this calendar's login needs renewing"
    return REASONS[Verdict.NOT_A_TARGET]


def verdict_in(
    trace: PlanTrace,
    key: str,
    target: CalendarView,
    copy_of: CalendarView | None,
) -> Verdict:
    """The planner's verdict on the event of ``key`` in ``target``: the event's own when it
    does not block, else the target's."""
    verdict = trace.sources.get(key, Verdict.NOT_A_SOURCE)
    if verdict is not Verdict.BLOCKS:
        return verdict
    if not target.receives_blocks or copy_of is not None:
        return Verdict.NOT_A_TARGET
    return trace.targets.get((target.id, key), Verdict.NOT_A_TARGET)
