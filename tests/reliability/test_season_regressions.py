"""What the simulated season found, each kept as the shortest step sequence that showed it
(shrunk by `python -m tests.reliability.soak --shrink`), replayed in a fresh season."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calsync_server.emulators.google.runner import RunningEmulator
from tests.reliability.season import play


def replay(emulator: RunningEmulator, tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    play(emulator, tmp_path, seed=0, days=0, faults=True, steps=steps)


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
