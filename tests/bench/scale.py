"""Figure 4: scale. The initial sync of 5 calendars x 1,000 events (20,000 busy blocks) by a real
server process: time, calls, peak memory; then one incremental change on a calendar holding
10,000 events against the same change on one holding 10."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from calsync_server.emulators.google.store import Store
from tests.bench.harness import (
    Table,
    api,
    block_rows,
    calsync_server,
    enable,
    median,
    settled,
)
from tests.support.waiting import wait_until
from tests.support.world import Cal, World

CALENDARS = 5
EVENTS = 1_000
BIG = 10_000
SMALL = 10
ROUNDS = 5


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def fill(store: Store, cal: Cal, count: int, per_day: int) -> list[str]:
    """`count` short events spread over the next weeks, straight into the emulator's store."""
    day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    step = timedelta(minutes=max(10, 16 * 60 // per_day))
    ids: list[str] = []
    for n in range(count):
        start = day + timedelta(days=1 + n // per_day) + step * (n % per_day)
        body: dict[str, Any] = {
            "summary": f"Event {n}",
            "start": {"dateTime": iso(start)},
            "end": {"dateTime": iso(start + timedelta(minutes=5))},
        }
        ids.append(str(store.insert_event(cal.email, cal.provider_id, body)["id"]))
    return ids


def measure(table: Table, tmp: Path) -> None:
    with run_emulator(EmulatorConfig()) as emulator:
        initial_sync(table, emulator.url, World(emulator, f"sqlite:///{tmp / 's.db'}", tmp / "s"))
    with run_emulator(EmulatorConfig()) as emulator:
        world = World(emulator, f"sqlite:///{tmp / 'i.db'}", tmp / "i")
        try:
            incremental(table, world)
        finally:
            world.close()


def initial_sync(table: Table, url: str, world: World) -> None:
    try:
        store = world.emulator.emulator.store
        cals = [world.account(f"user{n}@example.com")["primary"] for n in range(CALENDARS)]
        for cal in cals:
            fill(store, cal, EVENTS, per_day=12)
        expected = CALENDARS * EVENTS * (CALENDARS - 1)
        with calsync_server(world, push=False) as server, api(server) as client:
            idle_mib = server.peak_rss_mib()
            world.reset_stats()
            started = time.perf_counter()
            enable(client, *(c.id for c in cals))
            wait_until(
                lambda: block_rows(world) == expected and settled(world),
                timeout=400,
                interval=0.05,
                what=f"{expected} busy blocks",
            )
            seconds = time.perf_counter() - started
            peak_mib = server.peak_rss_mib()
            stats = world.stats()
        in_provider = sum(len(world.blocks(c)) for c in cals)
    finally:
        world.close()
    total = int(stats["total_calls"])
    by_method = ", ".join(f"{m} {c}" for m, c in stats["calls"].items())
    table.add(
        f"4. Initial sync, {CALENDARS} calendars x {EVENTS:,} events → {expected:,} blocks",
        f"{seconds:.1f} s ({expected / seconds:,.0f} blocks/s); {total:,} calls; "
        f"peak RSS {peak_mib:.0f} MiB",
        f"{expected:,} blocks written; idle server {idle_mib:.0f} MiB",
        f"{total / expected:.2f} calls per block",
        None if in_provider == expected else False,
    )
    table.notes.append(
        f"Initial sync: `calsync serve` (own process, 2 workers, SQLite, polling mode: no push "
        f"channels, so only the initial syncs run) after sync is turned on for {CALENDARS} "
        f"calendars through the API; timed until the database holds all {expected:,} blocks "
        f"and the queue is empty (probed every 50 ms). Calls by method: {by_method}. Peak "
        f"memory is the server's VmHWM (peak resident set) from /proc. The emulator held "
        f"{in_provider:,} blocks afterwards. No target was set for this figure."
    )


def incremental(table: Table, world: World) -> None:
    store = world.emulator.emulator.store
    big = world.account("big@example.com", "Mirror", user="big")
    small = world.account("small@example.com", "Mirror", user="small")
    big_ids = fill(store, big["primary"], BIG, per_day=120)
    small_ids = fill(store, small["primary"], SMALL, per_day=12)
    world.configure(big["primary"], big["Mirror"], small["primary"], small["Mirror"])
    setup = time.perf_counter()
    world.sync_all(big["primary"], big["Mirror"], small["primary"], small["Mirror"])
    setup_s = time.perf_counter() - setup
    times: dict[str, list[float]] = {"big": [], "small": []}
    calls: dict[str, list[int]] = {"big": [], "small": []}
    methods: dict[str, str] = {}
    for n in range(ROUNDS):
        for name, cals, ids in (("big", big, big_ids), ("small", small, small_ids)):
            source = cals["primary"]
            current = store.get_event(source.email, source.provider_id, ids[n])
            start = datetime.fromisoformat(current["start"]["dateTime"].replace("Z", "+00:00"))
            moved = start + timedelta(minutes=1)
            patch = {
                "start": {"dateTime": iso(moved)},
                "end": {"dateTime": iso(moved + timedelta(minutes=5))},
            }
            store.update_event(source.email, source.provider_id, ids[n], patch, patch=True)
            world.reset_stats()
            began = time.perf_counter()
            world.sync(source)
            times[name].append(time.perf_counter() - began)
            stats = world.stats()
            calls[name].append(int(stats["total_calls"]))
            methods[name] = ", ".join(f"{m} {c}" for m, c in stats["calls"].items())
            world.sync(cals["Mirror"])  # consume the echo before the next round
    big_t, small_t = median(times["big"]), median(times["small"])
    big_c, small_c = max(calls["big"]), max(calls["small"])
    ratio = big_t / small_t
    table.add(
        f"4. Incremental one-event move, calendar of {BIG:,} events",
        f"{big_t * 1000:.0f} ms, {big_c} calls",
        f"calendar of {SMALL} events: {small_t * 1000:.0f} ms, {small_c} calls",
        f"time {ratio:.2f}x, calls {big_c / small_c:.2f}x (target calls 1.00x, time ≤ 2x)",
        big_c == small_c and ratio <= 2.0,
    )
    table.notes.append(
        f"Incremental: calsync's engine in the benchmark's process (SQLite), the emulator over "
        f"HTTP; median of {ROUNDS} moves of one event each, timed around one incremental "
        f"`sync_calendar` of the source (list with the sync token, move the block). Per run, "
        f"{BIG:,}-event calendar: {', '.join(f'{t * 1000:.0f}' for t in times['big'])} ms; "
        f"{SMALL}-event: {', '.join(f'{t * 1000:.0f}' for t in times['small'])} ms. Calls "
        f"of the last run: {methods.get('big')} (big), {methods.get('small')} (small). Setting "
        f"up both (the {BIG:,} blocks written by the engine in-process) took {setup_s:.0f} s."
    )
