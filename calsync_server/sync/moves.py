"""Merged blocks moved, not replaced: a merged block a member joins or leaves is rewritten in
place under its new source key instead of deleted and created again (one write, not two)."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence, Set
from datetime import datetime

from calsync_server.sync.plan_types import DesiredBlock, ExistingBlock

Span = tuple[datetime, datetime]
Move = tuple[ExistingBlock, DesiredBlock]


def moves(
    vacated: Sequence[tuple[ExistingBlock, Span]],
    fresh: Sequence[DesiredBlock],
    claimed: Set[tuple[int, str]],
    merging: Set[int],
) -> list[Move]:
    """Pairs of a block no desired block asks for any more (``vacated``, with its span) and a
    desired block that has none yet (``fresh``) in the same target, to be one update.

    A block whose id is the one a fresh block would be given (deterministic ids: a group back
    to members it had, or merging turned off again) goes to that block in any target: the
    create would meet it anyway. In the targets that merge (``merging``), any other block
    whose id some create will be given (``claimed``) is left to be deleted, so no create meets
    a block moved elsewhere; so is a merged block in a target that stopped merging. The rest
    pair greedily by the longest overlap (touching counts),
    ties broken by block id and source key: pure and deterministic.
    """
    pairs: list[Move] = []
    taken: set[int] = set()  # fresh blocks paired
    used: set[int] = set()  # vacated blocks paired
    wants_id = {
        (d.target_calendar_id, d.provider_event_id): i
        for i, d in enumerate(fresh)
        if d.provider_event_id is not None
    }
    for j, (block, _) in enumerate(vacated):
        i = wants_id.get((block.target_calendar_id, block.provider_event_id))
        if i is not None and i not in taken:
            taken.add(i)
            used.add(j)
            pairs.append((block, fresh[i]))

    by_target: dict[int, list[int]] = defaultdict(list)
    for i in sorted(range(len(fresh)), key=lambda i: (fresh[i].start_at, fresh[i].source_key)):
        if i not in taken:
            by_target[fresh[i].target_calendar_id].append(i)
    # Per target, the fresh blocks' starts and the latest end so far: the ones a span
    # overlaps are found by bisection, not by trying every pair.
    starts = {t: [fresh[i].start_at for i in ids] for t, ids in by_target.items()}
    reach: dict[int, list[datetime]] = {}
    for t, ids in by_target.items():
        latest: list[datetime] = []
        for i in ids:
            latest.append(max(latest[-1], fresh[i].end_at) if latest else fresh[i].end_at)
        reach[t] = latest
    candidates: list[tuple[float, str, str, int, int]] = []
    for j, (block, (low, high)) in enumerate(vacated):
        target = block.target_calendar_id
        # A merged block is moved in a target that stopped merging too: one of the blocks it
        # splits into takes it over (one update, not a delete and the creates of them all).
        # Elsewhere a block keeps the id its key gives it, so a retried create meets it.
        if j in used or (target not in merging and not block.member_sources):
            continue
        if (target, block.provider_event_id) in claimed:
            continue
        ids = by_target.get(target, [])
        k = bisect_right(starts.get(target, []), high) - 1
        while k >= 0 and reach[target][k] >= low:
            d = fresh[ids[k]]
            if d.end_at >= low:
                overlap = (min(high, d.end_at) - max(low, d.start_at)).total_seconds()
                candidates.append((-overlap, block.provider_event_id, d.source_key, j, ids[k]))
            k -= 1
    for _, _, _, j, i in sorted(candidates):
        if j in used or i in taken:
            continue
        used.add(j)
        taken.add(i)
        pairs.append((vacated[j][0], fresh[i]))
    return pairs
