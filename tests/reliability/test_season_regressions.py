"""What the simulated season found, each kept as the shortest step sequence that showed it
(shrunk by `python -m tests.reliability.soak --shrink`), replayed in a fresh season."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from calsync_server.emulators.google.runner import RunningEmulator
from tests.reliability.season import BASE_BEFORE_US_DST, play

CASES = Path(__file__).with_name("cases")


def replay(emulator: RunningEmulator, tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    # Saved before the season began on 2030-03-06: their steps' days count from 2030-03-27.
    base = None if steps and steps[0]["op"] == "begin" else BASE_BEFORE_US_DST
    play(emulator, tmp_path, seed=0, days=0, faults=True, steps=steps, base=base)


def test_a_google_event_moved_past_the_horizon_loses_its_blocks_by_the_next_safety_net(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Seed 1, day 11: Google's sync token keeps the window of the listing that gave it, and
    its feed says nothing of an event moved out of it, so the evening's incremental syncs
    cannot see the move (the walk's evening check leaves those blocks out); the next
    morning's full reconcile must remove them everywhere."""
    replay(
        emulator,
        tmp_path,
        [
            {
                "op": "add",
                "cal": "Team",
                "handle": "u1-e13",
                "title": "u1-e13 Review",
                "day": 8,
                "at": "2030-04-04T09:28:54+00:00",
                "start": "2030-04-16T11:00:00+00:00",
                "end": "2030-04-16T11:30:00+00:00",
            },
            {"op": "morning", "day": 11},
            {
                "op": "move",
                "handle": "u1-e13",
                "start": "2030-07-09T19:30:00+00:00",
                "end": "2030-07-09T20:30:00+00:00",
                "day": 11,
                "at": "2030-04-07T09:13:06+00:00",
            },
            {"op": "evening", "day": 11, "changes": 1},
            {"op": "morning", "day": 12},  # strict: the safety net took the blocks away
        ],
    )


def test_a_merged_block_joining_a_google_event_moved_past_the_horizon_stays_until_the_safety_net(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Seed 90, day 71 (the walk's oracle, not calsync): Outlook merges blocks; a Family event
    and a Team (Google) event next to it make one merged block there; the Team event is moved
    past the horizon, which Google's feed does not tell of, so the merged block stays whole
    that evening (the walk had expected the Family event's block alone); the next morning's
    safety net must leave the Family event's block alone."""
    replay(
        emulator,
        tmp_path,
        [
            {"op": "morning", "day": 0},
            {
                "op": "set",
                "cal": "Outlook",
                "changes": {"merge": True},
                "day": 0,
                "at": "2030-03-27T08:30:00+00:00",
            },
            {
                "op": "add",
                "cal": "Family",
                "handle": "u1-e1",
                "title": "u1-e1 Gym",
                "day": 0,
                "at": "2030-03-27T09:00:00+00:00",
                "start": "2030-04-05T06:00:00+00:00",
                "end": "2030-04-05T07:30:00+00:00",
            },
            {
                "op": "add",
                "cal": "Team",
                "handle": "u1-e2",
                "title": "u1-e2 Lunch",
                "day": 0,
                "at": "2030-03-27T09:30:00+00:00",
                "start": "2030-04-05T07:30:00+00:00",
                "end": "2030-04-05T09:00:00+00:00",
            },
            {"op": "evening", "day": 0, "changes": 2},
            {"op": "morning", "day": 1},
            {
                "op": "move",
                "handle": "u1-e2",
                "start": "2030-07-01T09:30:00+00:00",
                "end": "2030-07-01T11:30:00+00:00",
                "day": 1,
                "at": "2030-03-28T09:40:00+00:00",
            },
            {"op": "evening", "day": 1, "changes": 1},
            {"op": "morning", "day": 2},  # strict: the safety net split the merged block
        ],
    )


@pytest.mark.skipif(
    not os.environ.get("CALSYNC_SOAK_LONG"),
    reason="a 64-day replay (about 5 minutes): CALSYNC_SOAK_LONG=1 runs it",
)
def test_seed_7_day_64_a_merging_target_while_a_source_account_needs_sign_in(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Seed 7 (make soak on SQLite), day 64, not yet shrunk: Team merges blocks; Ada's
    Graph login is refused (Outlook and Family need sign-in, a merged block in Team joins a
    Family event and a Personal one); the person adds an event to Team and its sync inserts a
    row for a block of Personal's 07:30 event in Team that the database refuses: UNIQUE
    busy_block(target_calendar_id, provider_event_id). No row held that id before the step:
    the sync's own writes collide, and the sync raised instead of logging an error. Fixed in
    the planner: a merged block left standing for a signed-out source covers the members it
    spans (tests/sync/test_rules.py has the small case)."""
    steps = msgspec.json.decode((CASES / "seed7-day64-merge-refused-login.json").read_bytes())
    replay(emulator, tmp_path, steps)


def test_seed_3_day_3_a_caldav_delete_read_by_a_killed_server_keeps_its_blocks(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """Seed 3 (25 days on SQLite, the 2030-03-06 base), day 3, shrunk to 12 steps: the person
    deletes a Club (CalDAV) event, which calsync learns of at Club's next sync; that sync is
    a real `calsync serve`'s, killed by SIGKILL after its second block write, and the job it
    held is taken back and run (25 blocks created, none deleted); Club's evening sync deletes
    nothing either, and the deleted event's blocks stay in Team, Outlook and Family. Replayed
    twice, failed both times (the kill's moment is the only free part). The killed sync had
    stored the delete; the sync run again read it again and, the row deleted already, did not
    plan the event again (a live event read again was). Fixed in ingest: a delete read again is
    planned again."""
    steps = msgspec.json.decode((CASES / "seed3-day3-caldav-delete-under-kill.json").read_bytes())
    replay(emulator, tmp_path, steps)
