"""The simulated season's short run, inside the main suite: five days (across the US's DST
change, on a calendar and series kept on New York's clock) of a mixed user and a second one,
every provider, faults on (a kill -9 of a real `calsync serve` among them); the invariant
checked every simulated day (season.py). `make soak` walks 90 days."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calsync_server.emulators.google.runner import RunningEmulator
from tests.reliability.season import play, postgres_cluster

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
    # The season starts four days before the US's clocks change: the walk's blocks of New
    # York's series and working hours were checked on both sides of it.
    assert "America/New_York 2030-03-10" in figures.dst_changes
    # Every provider had its bad moments (Graph's timeouts and CalDAV's 429s among them).
    assert {label.split()[0] for label in figures.fault_kinds} == {"google", "microsoft", "caldav"}
    assert {"microsoft timeout", "caldav 429"} <= figures.fault_kinds.keys()
    # Blocks moved, deleted and retitled by hand (season.FORCED_HAND), checked every evening.
    assert figures.hand_edits.keys() == {"move", "delete", "retitle"}


def test_the_database_away_while_calsync_serve_syncs_converges_by_itself(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """On a throwaway PostgreSQL cluster (where its programs are installed), the first day's
    outage is forced (season.FORCED_OUTAGE_DAY): PostgreSQL stopped for a few seconds while a
    real `calsync serve` writes blocks; the server finishes its job by itself once it is back,
    and the evening's invariant holds."""
    with postgres_cluster() as postgres:
        if postgres is None:
            pytest.skip("PostgreSQL's initdb is not installed: no cluster of the walk's own")
        cluster, url = postgres
        season = play(
            emulator, tmp_path, seed=SEED, days=1, faults=True, database_url=url, cluster=cluster
        )

    assert season.figures.database_outages >= 1
    assert season.figures.outages_mid_sync >= 1
