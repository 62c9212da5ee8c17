"""Figure 8: quota pacing. A first sync of 10,000 busy blocks by a real server process against the
Google emulator with its per-user quota on (Google's 600 calls a minute, the minute scaled down
so it runs in tens of seconds, calsync's settings scaled the same way): how many calls the
emulator refused (goal 0) and the time against the quota's floor, calls / rate (goal <= 1.05x).
Then the same for one Graph mailbox (its sliding window and its 4 requests at once), smaller.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import RunningGraphEmulator, run_graph_emulator
from calsync_server.sync.engine import SyncEngine
from calsync_server.sync.report import SyncProgress
from tests.bench.harness import (
    Table,
    api,
    block_rows,
    calsync_server,
    enable,
    graph_endpoints,
    settled,
    with_graph,
)
from tests.bench.scale import fill
from tests.support.drivers.connect import connect
from tests.support.drivers.microsoft import MicrosoftDriver
from tests.support.waiting import wait_until
from tests.support.world import FAST_RETRY, World

# 10,000, not the 20,000 of figure 4: one Google user's quota paces them all, and at the scaled
# rate 20,000 would take over two minutes of the bench's run (the environment may say more).
BLOCKS = int(os.environ.get("CALSYNC_BENCH_QUOTA_BLOCKS", "10000"))
CALLS = 600  # Google's calls per user per minute (providers.md)
# Google's minute, scaled 1/15: 150 calls a second, well under what the server writes unpaced
# (figure 4), so the quota and not calsync's own speed sets the pace. The window's first 600
# calls go at once, which covers the sync's reading and planning before its first write.
MINUTE_S = float(os.environ.get("CALSYNC_BENCH_QUOTA_MINUTE_S", "4.0"))


GRAPH_BLOCKS = int(os.environ.get("CALSYNC_BENCH_QUOTA_GRAPH_BLOCKS", "3000"))


def measure(table: Table, tmp: Path) -> None:
    with run_emulator(EmulatorConfig()) as emulator:
        world = World(emulator, f"sqlite:///{tmp / 'q.db'}", tmp / "q")
        try:
            run(table, world)
        finally:
            world.close()
    with (
        run_emulator(EmulatorConfig()) as emulator,
        run_graph_emulator(GraphEmulatorConfig()) as graph,
    ):
        world = World(emulator, f"sqlite:///{tmp / 'g.db'}", tmp / "g")
        try:
            run_graph(table, world, graph)
        finally:
            world.close()


def run(table: Table, world: World) -> None:
    cals = world.account("paced@example.com", "Mirror")
    source, mirror = cals["primary"], cals["Mirror"]
    fill(world.emulator.emulator.store, source, BLOCKS, per_day=120)
    paced = {
        "CALSYNC_QUOTA_PACING": "on",
        "CALSYNC_GOOGLE_CALLS_PER_MINUTE": str(CALLS),
        "CALSYNC_QUOTA_MINUTE_SECONDS": str(MINUTE_S),
    }
    with calsync_server(world, push=False, env=paced) as server, api(server) as client:
        # The target first (its own first sync reads an empty calendar): the figure is the
        # source's first sync, which writes every block.
        enable(client, mirror.id)
        wait_until(lambda: settled(world), timeout=60, what="the Mirror's first sync")
        quota = {"per_minute": CALLS, "window_s": MINUTE_S}
        world.admin.put("/emulator/quota", json=quota).raise_for_status()
        world.reset_stats()
        started = time.perf_counter()
        first_write: list[float] = []

        def done() -> bool:
            # When the first block write reached the emulator (its in-process counts): what
            # comes before is reading, storing and planning, which no quota paces.
            if not first_write and emulator_stats.calls.get("events.insert"):
                first_write.append(time.perf_counter() - started)
            return block_rows(world) == BLOCKS and settled(world)

        emulator_stats = world.emulator.emulator.stats
        enable(client, source.id)
        wait_until(
            done,
            timeout=BLOCKS / CALLS * MINUTE_S * 3 + 60,
            interval=0.05,
            what=f"{BLOCKS} busy blocks",
        )
        seconds = time.perf_counter() - started
        stats = world.stats()
        refused = int(world.admin.get("/emulator/quota").json()["rejected"])
    world.admin.put("/emulator/quota", json={"per_minute": None}).raise_for_status()
    in_provider = len(world.blocks(mirror))
    calls = int(stats["total_calls"])
    floor = calls / (CALLS / MINUTE_S)
    ratio = seconds / floor
    before_writes = first_write[0] if first_write else 0.0
    writes = int(stats["calls"].get("events.insert", 0))
    writes_ratio = (seconds - before_writes) / (writes / (CALLS / MINUTE_S))
    by_method = ", ".join(f"{m} {c}" for m, c in stats["calls"].items())
    table.add(
        f"8. Quota pacing: first sync of {BLOCKS:,} blocks, Google quota on",
        f"{seconds:.1f} s; {refused} rate-limit answers; {calls:,} calls",
        f"quota's floor {floor:.1f} s ({calls:,} calls at {CALLS} per {MINUTE_S:g} s)",
        f"{ratio:.3f}x (target 0 refusals, ≤ 1.05x)",
        refused == 0 and ratio <= 1.05 and in_provider == BLOCKS,
    )
    table.notes.append(
        f"Quota pacing: `calsync serve` (own process, 2 workers, SQLite, polling mode) turns on "
        f"one Google account's 'Mirror' calendar, then its primary calendar ({BLOCKS:,} "
        f"events), timed from there until the database holds every block and the queue is "
        f"empty. The emulator's per-user quota is on at {CALLS} calls per {MINUTE_S:g} s "
        f"(Google's minute scaled 1/{60 / MINUTE_S:g}), calsync's settings scaled the same way "
        f"(quota_pacing on, quota_minute_seconds {MINUTE_S:g}). The floor is the emulator's "
        f"count of calls divided by the quota's rate: a sliding window lets the first {CALLS} "
        f"calls go at once, so pacing can finish just under it. Reading, storing and planning "
        f"before the first write took {before_writes:.1f} s, which no quota paces (the window's "
        f"first {CALLS} calls, {MINUTE_S:g} s of the floor, make up for that much); from the "
        f"first write to the last, {seconds - before_writes:.1f} s for {writes:,} writes: "
        f"{writes_ratio:.3f}x their floor. Calls: {by_method}. The emulator held "
        f"{in_provider:,} blocks afterwards."
    )
    if ratio > 1.05 and refused == 0:
        table.notes.append(
            f"Missed (Google quota pacing, {ratio:.3f}x): the writes ran at {writes_ratio:.3f}x "
            f"their floor; what is over is the {before_writes:.1f} s before the first write, "
            "CPU work no quota paces, beyond what the window's first calls make up for."
        )


def run_graph(table: Table, world: World, graph: RunningGraphEmulator) -> None:
    """One mailbox: 'Source' with GRAPH_BLOCKS events and 'Mirror', synced by calsync's engine
    in the benchmark's process; the throttle at 600 requests per MINUTE_S (Graph's 10,000 per
    10 minutes is too many for a first sync of this size to meet) and 4 at once."""
    with_graph(world, graph_endpoints(graph))
    driver = MicrosoftDriver(graph_endpoints(graph))
    try:
        source, mirror = connect(world, driver, "Source", "Mirror")
        store = graph.emulator.store
        mailbox = store.mailbox_of(driver.email)
        day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
        for n in range(GRAPH_BLOCKS):
            start = day + timedelta(days=1 + n // 40, minutes=20 * (n % 40))
            body: dict[str, Any] = {
                "subject": f"Event {n}",
                "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "end": {
                    "dateTime": (start + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"),
                    "timeZone": "UTC",
                },
                "showAs": "busy",
            }
            store.create_event(mailbox, source.provider_id, body, trusted=True)
        world.configure(mirror)  # first, alone: the source's first sync writes every block
        world.settings = msgspec.structs.replace(
            world.settings,
            quota_pacing="on",
            microsoft_calls_per_10_minutes=CALLS,
            quota_minute_seconds=MINUTE_S / 10,
        )
        engine = SyncEngine(world.db, world.settings, vault=world.vault, retry=FAST_RETRY)
        engine.sync_calendar(mirror.id)
        world.configure(source)
        throttle = {"enabled": True, "requests_per_window": CALLS, "window_s": MINUTE_S}
        driver.admin.put("/emulator/throttling", json=throttle).raise_for_status()
        driver.admin.post("/emulator/stats/reset").raise_for_status()
        started = time.perf_counter()
        first_write: list[float] = []

        def progress(at: SyncProgress) -> None:
            if at.phase == "writing" and not first_write:
                first_write.append(time.perf_counter() - started)

        result = engine.sync_calendar(source.id, progress=progress)
        seconds = time.perf_counter() - started
        stats = driver.admin.get("/emulator/stats").json()
        refused = int(driver.admin.get("/emulator/throttling").json()["rejected"])
        driver.admin.put("/emulator/throttling", json={"enabled": False}).raise_for_status()
        in_provider = sum(1 for e in driver.events(mirror.provider_id) if e["mark"])
    finally:
        driver.close()
    # Graph counts each item of a $batch, not the $batch itself (the emulator's throttle too).
    by_method = {m: c for m, c in stats["calls"].items() if m not in ("$batch", "token")}
    calls = sum(by_method.values())
    floor = calls / (CALLS / MINUTE_S)
    ratio = seconds / floor
    before_writes = first_write[0] if first_write else 0.0
    writes = int(by_method.get("events.create", 0))
    writes_ratio = (seconds - before_writes) / (writes / (CALLS / MINUTE_S))
    table.add(
        f"8. Quota pacing: first sync of {GRAPH_BLOCKS:,} blocks, Graph throttle on",
        f"{seconds:.1f} s; {refused} rate-limit answers; {calls:,} calls",
        f"quota's floor {floor:.1f} s ({calls:,} calls at {CALLS} per {MINUTE_S:g} s)",
        f"{ratio:.3f}x (target 0 refusals, ≤ 1.05x)",
        refused == 0 and ratio <= 1.05 and in_provider == GRAPH_BLOCKS,
    )
    table.notes.append(
        f"Quota pacing (Graph): calsync's engine in the benchmark's process (SQLite) syncs one "
        f"mailbox's 'Source' ({GRAPH_BLOCKS:,} events) into its 'Mirror' (synced first, "
        f"empty) with the Graph emulator's throttle on at {CALLS} requests per {MINUTE_S:g} s "
        f"per mailbox and 4 at once (Graph's 10,000 per 10 minutes would let this whole sync "
        f"through in its first window), calsync's settings scaled alike. Sync status "
        f"{result.log.status.value}; before the first write {before_writes:.1f} s; from there "
        f"{seconds - before_writes:.1f} s for {writes:,} writes: {writes_ratio:.3f}x their "
        f"floor. Calls: {', '.join(f'{m} {c}' for m, c in by_method.items())}. The emulator "
        f"held {in_provider:,} blocks afterwards."
    )
    if ratio > 1.05 and refused == 0:
        table.notes.append(
            f"Missed (Graph quota pacing, {ratio:.3f}x): the writes ran at {writes_ratio:.3f}x "
            f"their floor; what is over is the {before_writes:.1f} s before the first write "
            "(reading the source's delta pages, storing its events, planning the blocks), CPU "
            "work that no quota paces and that the floor (calls over the quota's rate) does not "
            "count; it grows on a slower machine (0.4 s on the AMD EPYC of 2026-12-01's earlier "
            "run, where the figure was 1.006x)."
        )
