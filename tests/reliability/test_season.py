"""The simulated season's short run, inside the main suite: five days (across the EU's DST
change) of a mixed user and a second one, every provider, faults on (a kill -9 of a real
`calsync serve` among them); the invariant checked every simulated day (season.py). `make
soak` walks 90 days."""

from __future__ import annotations

import os
from pathlib import Path

from calsync_server.emulators.google.runner import RunningEmulator
from tests.reliability.season import play

SEED = int(os.environ.get("CALSYNC_SOAK_SEED", "20300318"))
DAYS = int(os.environ.get("CALSYNC_SOAK_DAYS", "5"))


def test_five_days_of_changes_and_faults_keep_the_invariant_every_day(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    season = play(emulator, tmp_path, seed=SEED, days=DAYS, faults=True)

    figures = season.figures
    assert figures.days == DAYS
    assert figures.changes > DAYS  # the walk did change things every day
    assert figures.faults > 0
    # Each rare step came once (season.FORCED): two refused logins, two disconnects, and a
    # kill -9 of a real `calsync serve` mid-sync (season.FORCED_KILL_DAY).
    assert {"refuse", "fix", "disconnect", "kill"} <= {step["op"] for step in season.steps}
    assert figures.kills_mid_sync >= 1
