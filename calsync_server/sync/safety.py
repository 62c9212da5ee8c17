"""The safety catch (domain.md): deletes that would empty a target after a source's read
suddenly came back far emptier are held, not applied, until the user confirms or the source
recovers. Pure: the engine and the dry run pass counts and a plan, and get back the plan to
apply and what it holds.

What is held is only the deletes of the dropped source's blocks in the targets that cross the
line: the plan's creates and updates, and every other delete, go ahead. A careful user wants
new events blocked while the question is open, and a target that would lose a few blocks is
no disaster.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from calsync_server.providers.model import ChangeSet
from calsync_server.sync.plan_types import BusyBlockPlan, ExistingBlock

# The fewest deletes in one target that are ever held, and the fewest events a read must lose
# to count as a sudden drop.
MIN_HELD = 10


def may_drop(changes: ChangeSet) -> bool:
    """Whether storing this read could lose MIN_HELD live events: a full read or a series sent
    whole (what they leave out is gone), or MIN_HELD removals and cancellations. Any other
    read cannot be a sudden drop, so its calendar's events need not be counted around it."""
    if changes.full or changes.series_replaced:
        return True
    cancelled = sum(1 for event in changes.events if event.cancelled)
    return len(changes.removed) + cancelled >= MIN_HELD


def read_dropped(before: int, after: int) -> bool:
    """A read of a calendar that suddenly returned far fewer events: fewer than half of the
    live events it had, and at least MIN_HELD fewer."""
    return before - after >= MIN_HELD and after * 2 < before


def crosses_line(deletes: int, future_blocks: int) -> bool:
    """Whether deleting ``deletes`` of a target's ``future_blocks`` is held: more than half of
    them, and at least MIN_HELD."""
    return deletes >= MIN_HELD and deletes * 2 > future_blocks


@dataclass(frozen=True, slots=True)
class Held:
    """The deletes the catch holds: source calendar -> target calendar -> blocks."""

    blocks: Mapping[int, Mapping[int, tuple[ExistingBlock, ...]]]

    def of(self, source_id: int) -> Mapping[int, tuple[ExistingBlock, ...]]:
        return self.blocks.get(source_id, {})

    @property
    def count(self) -> int:
        """Blocks held (a merged block held for two of its sources counts once)."""
        return len(
            {id(b) for targets in self.blocks.values() for bs in targets.values() for b in bs}
        )


def _is_future(block: ExistingBlock, now: datetime) -> bool:
    end = block.end_at
    if end is None and block.end is not None:
        end = block.end.to_utc("UTC")
    return end is None or end > now


def hold_deletes(
    plan: BusyBlockPlan,
    holding: Collection[int],
    future_blocks: Mapping[int, int],
    now: datetime,
) -> tuple[BusyBlockPlan, Held]:
    """The plan with the held deletes taken out, and those deletes.

    ``holding``: source calendars whose read suddenly dropped, or that hold already (until the
    user confirms or the source recovers); ``future_blocks``: each target's blocks that have
    not ended, before the plan. Only a real delete of a block that has not ended can be held
    (a hand-deleted block's row is only forgotten).
    """
    candidates: dict[tuple[int, int], list[ExistingBlock]] = defaultdict(list)
    for block in plan.deletes:
        if block.user_deleted or not _is_future(block, now):
            continue
        # A merged block stands for every member's source (its row's own source is only its
        # first member's): it counts among the deletes of each dropped source it stands for.
        for source_id in sorted(block.sources & set(holding)):
            candidates[(source_id, block.target_calendar_id)].append(block)
    held: dict[int, dict[int, tuple[ExistingBlock, ...]]] = defaultdict(dict)
    for (source_id, target_id), blocks in candidates.items():
        if crosses_line(len(blocks), future_blocks.get(target_id, 0)):
            held[source_id][target_id] = tuple(blocks)
    if not held:
        return plan, Held({})
    gone = {id(b) for targets in held.values() for blocks in targets.values() for b in blocks}
    kept = tuple(b for b in plan.deletes if id(b) not in gone)
    return replace(plan, deletes=kept), Held(dict(held))
