"""`make soak`: the simulated season over 90 days, every provider, faults on; its figures go to
tests/bench/RESULTS.md between `<!-- soak -->` and `<!-- /soak -->`. Also replays a failing
walk's saved steps (--replay) and shrinks them to a shortest failing sequence (--shrink).

    python -m tests.reliability.soak [--days 90] [--seed N] [--no-faults]
    python -m tests.reliability.soak --replay steps.json
    python -m tests.reliability.soak --shrink steps.json   # writes steps.shrunk.json
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from tests.reliability.season import (
    BUDGET_BASE,
    BUDGET_PER_CHANGE,
    Figures,
    SeasonFailure,
    play,
    postgres_cluster,
)

RESULTS = Path(__file__).parents[1] / "bench" / "RESULTS.md"
START, END = "<!-- soak -->", "<!-- /soak -->"
# Days and checks are cheap to name, so a shrink keeps them; it drops the person's changes.
KEPT = {"begin", "morning", "evening"}


def render(
    figures: Figures, seed: int, faults: bool, load: tuple[float, float], database: str
) -> str:
    calls = figures.calls_per_day
    ordered = sorted(calls)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if calls else 0
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    per_day = figures.seconds / max(figures.days, 1)
    rows = [
        (
            "simulated days (invariant checked twice a day: after the safety net, in the evening)",
            f"{figures.days}",
        ),
        (
            "person's changes (creates, moves, retitles, deletes, series occurrences)",
            f"{figures.changes}",
        ),
        (
            "push notifications lost (the evening poll must catch the change)",
            f"{figures.lost_notifications}",
        ),
        (
            "faults injected (429/503 with Retry-After, dropped connections, timeouts, expired "
            "cursors, bursts past the retries)",
            f"{figures.faults}" if faults else "0 (faults off)",
        ),
        (
            "blocks edited by hand in a target (moved, retitled, deleted: left as the person "
            "made them, a deleted one not made again while its source is unchanged)",
            ", ".join(f"{k} {v}" for k, v in sorted(figures.hand_edits.items())) or "none",
        ),
        (
            "faults by provider and kind",
            ", ".join(f"{k} {v}" for k, v in sorted(figures.fault_kinds.items())) or "none",
        ),
        (
            "daylight saving changes crossed (zoned series, working hours and blocks checked "
            "across them)",
            ", ".join(figures.dst_changes) or "none",
        ),
        (
            "database outages (PostgreSQL stopped at once for 1-3 s while `calsync serve` "
            "synced, started again; the server finished its job by itself) / of them mid-sync",
            f"{figures.database_outages} / {figures.outages_mid_sync}",
        ),
        (
            "`calsync serve` killed by SIGKILL while syncing (a real process on the walk's clock;"
            " a restarted server took the job back) / of them still mid-sync",
            f"{figures.kills} / {figures.kills_mid_sync}",
        ),
        (
            "refused logins (then signed in again) / accounts disconnected (then re-added)",
            f"{figures.refusals} / {figures.disconnects}",
        ),
        (
            "syncs run / not successful at first (kept and retried)",
            f"{figures.syncs} / {figures.failed_syncs}",
        ),
        (
            "calsync's provider requests per day: mean / p95 / max",
            f"{statistics.fmean(calls) if calls else 0:.0f} / {p95} / {max(calls, default=0)}",
        ),
        ("budget per day (requests)", f"{BUDGET_BASE} + {BUDGET_PER_CHANGE} per change"),
        ("time", f"{figures.seconds:.0f} s ({per_day:.1f} s per simulated day)"),
    ]
    lines = [
        START,
        "## Soak: a simulated season (`make soak`)",
        "",
        f"{when}, seed {seed}, load {load[0]:.1f} -> {load[1]:.1f}. A mixed user (Google x2, "
        "Microsoft x2, CalDAV on Radicale x2) and a second user (Google, Microsoft), calsync's "
        f"engine on {database}, the clock moved a day at a time (tests/reliability/season.py).",
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(section: str, path: Path = RESULTS) -> None:
    """Put the soak's section in RESULTS.md, replacing the one before (make bench keeps it)."""
    text = path.read_text() if path.exists() else ""
    start, end = text.find(START), text.find(END)
    if start >= 0 and end >= 0:
        text = text[:start] + section.rstrip("\n") + text[end + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def replay(emulator: RunningEmulator, steps: list[dict[str, Any]], scratch: Path) -> str | None:
    """The failure the steps give, if any, in a fresh world: what broke and when (the first
    line of the check's or the step's error)."""
    try:
        play(emulator, scratch, seed=0, days=0, faults=True, steps=steps)
    except SeasonFailure as exc:
        return (str(exc.__cause__ or exc).splitlines() or [""])[0]
    return None


def shrink(emulator: RunningEmulator, steps: list[dict[str, Any]], budget_s: float) -> list[Any]:
    """Drop the person's steps in ever smaller chunks while the walk still fails the same way
    (ddmin's greedy half): what is left is a failing sequence no chunk of which can go."""
    deadline = time.monotonic() + budget_s
    with tempfile.TemporaryDirectory(prefix="calsync-shrink-") as tmp:
        wanted = replay(emulator, steps, Path(tmp))
    chunk = max(1, len(steps) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        index, dropped = 0, False
        while index < len(steps) and time.monotonic() < deadline:
            part = [s for s in steps[index : index + chunk] if s["op"] not in KEPT]
            if not part:
                index += chunk
                continue
            candidate = [s for s in steps if not any(s is p for p in part)]
            with tempfile.TemporaryDirectory(prefix="calsync-shrink-") as tmp:
                failure = replay(emulator, candidate, Path(tmp))
            if failure is not None and failure == wanted:
                print(f"  {len(candidate)} steps still fail: {failure[:160]}", flush=True)
                steps, dropped = candidate, True
            else:
                index += chunk
        if not dropped:
            chunk //= 2
    return steps


def main(argv: list[str]) -> int:
    logging.disable(logging.INFO)
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CALSYNC_SOAK_SEED", 90)))
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--sqlite", action="store_true", help="no PostgreSQL cluster, no outage")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures go")
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--shrink", type=Path)
    parser.add_argument("--shrink-seconds", type=float, default=900)
    args = parser.parse_args(argv)
    with run_emulator(EmulatorConfig()) as emulator:
        if args.replay or args.shrink:
            path = args.replay or args.shrink
            steps = msgspec.json.decode(path.read_bytes())
            with tempfile.TemporaryDirectory(prefix="calsync-replay-") as tmp:
                failure = replay(emulator, steps, Path(tmp))
            print(failure or "the steps pass")
            if args.shrink and failure:
                shrunk = shrink(emulator, steps, args.shrink_seconds)
                out = path.with_suffix(".shrunk.json")
                out.write_bytes(msgspec.json.format(msgspec.json.encode(shrunk)))
                print(f"{len(shrunk)} steps still fail: {out}")
            return 1 if failure else 0
        load = os.getloadavg()[0]
        with (
            tempfile.TemporaryDirectory(prefix="calsync-soak-") as tmp,
            nullcontext(None) if args.sqlite else postgres_cluster() as postgres,
        ):
            # On a PostgreSQL cluster of its own the walk can stop it for a moment; without
            # PostgreSQL's programs it runs on SQLite, with no database outage.
            cluster, url = postgres if postgres else (None, None)
            try:
                season = play(
                    emulator,
                    Path(tmp),
                    seed=args.seed,
                    days=args.days,
                    faults=not args.no_faults,
                    database_url=url,
                    cluster=cluster,
                )
            except SeasonFailure as failure:
                print(failure, flush=True)
                if failure.steps is not None:
                    # The shortest sequence that still fails, to keep as a regression test
                    # (replayed on SQLite: a database outage is not replayed).
                    print("shrinking ...", flush=True)
                    steps = msgspec.json.decode(failure.steps.read_bytes())
                    shrunk = shrink(emulator, steps, args.shrink_seconds)
                    out = failure.steps.with_suffix(".shrunk.json")
                    out.write_bytes(msgspec.json.format(msgspec.json.encode(shrunk)))
                    print(f"seed {args.seed}: {len(shrunk)} steps still fail: {out}")
                return 1
        database = "PostgreSQL (a throwaway cluster)" if cluster else "SQLite"
        section = render(
            season.figures, args.seed, not args.no_faults, (load, os.getloadavg()[0]), database
        )
        print(section)
        write_section(section, args.results)
        print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
