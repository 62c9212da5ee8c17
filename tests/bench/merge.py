"""Figure 7: what merging saves (issue 18): the busy blocks in the targets and the provider
writes it takes to put them there, with merge off and on, measured in the same run by the
emulator's counters, on the demo's calendars and on a dense day (back-to-back meetings from
several sources)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from calsync_server.accounts.service import connect_account, import_calendars
from calsync_server.accounts.vault import GoogleOAuth
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from calsync_server.emulators.google.scenario import HOLIDAYS, PERSONAL, WORK
from shared.domain import CalendarRole
from tests.bench.harness import Table
from tests.support.world import Cal, World

WRITES = ("events.insert", "events.patch", "events.update", "events.delete")
SOURCES = 3
TARGETS = 2
MEETING_MIN = 20
DAY_START_H = 9
DAY_END_H = 17
MEETINGS = (DAY_END_H - DAY_START_H) * 60 // MEETING_MIN


@dataclass(frozen=True)
class Outcome:
    """One run: the blocks the targets hold, and the writes of the syncs that put them there."""

    blocks: int
    writes: int
    by_method: dict[str, int]


def connect_seeded(world: World, email: str) -> list[Cal]:
    """An account the emulator's scenario made, signed in as calsync would be; its calendars."""
    access, refresh = world.emulator.emulator.store.new_grant(email)
    world.tokens[email] = {"access_token": access, "refresh_token": refresh}
    credentials = GoogleOAuth(access_token=access, refresh_token=refresh)
    with Session(world.db) as session:
        account = connect_account(
            session,
            world.vault,
            user_id=world.user(),
            email=email,
            credentials=credentials,
            now=datetime.now(UTC),
        )
        factory = world.engine.provider_factory
        with closing(factory(account.provider, account.id, credentials)) as provider:
            imported = import_calendars(session, account, provider)
        session.commit()
        return [World._cal(c, email) for c in imported]


def writes(world: World) -> tuple[int, dict[str, int]]:
    calls: dict[str, int] = dict(world.stats()["calls"])
    by_method = {m: calls[m] for m in WRITES if calls.get(m)}
    return sum(by_method.values()), by_method


def run(
    tmp: Path,
    name: str,
    scenario: str,
    build: Callable[[World], tuple[list[Cal], list[Cal]]],
    *,
    merge: bool,
    targets_later: bool,
) -> Outcome:
    """A fresh emulator and database. `targets_later`: the sources are read first (sync on
    as sources only), then each target turned on and synced, so the planner knows every event
    of the day when it writes; else every calendar is on from the start, synced in turn
    (twice, as World.sync_all does: the second pass consumes the echoes)."""
    with run_emulator(EmulatorConfig(scenario=scenario)) as emulator:
        world = World(emulator, f"sqlite:///{tmp / f'{name}.db'}", tmp / f"{name}-home")
        try:
            sources, targets = build(world)
            everything = list(dict.fromkeys([*sources, *targets]))
            roles = {c: _role(c, sources, targets) for c in everything}
            if targets_later:
                for cal in everything:
                    world.configure(cal, role=CalendarRole.SOURCE, merge_blocks=merge)
                for cal in everything:
                    world.sync(cal)
                world.reset_stats()
                for cal in everything:
                    world.configure(cal, role=roles[cal])
                # A full sync each (a role changed behind the engine's back is no change it
                # hears of), then a pass that consumes the echoes.
                for cal in everything:
                    world.sync(cal, full=True)
                world.sync_all(*everything)
            else:
                for cal in everything:
                    world.configure(cal, role=roles[cal], merge_blocks=merge)
                world.reset_stats()
                world.sync_all(*everything)
            total, by_method = writes(world)
            blocks = sum(len(world.blocks(t)) for t in targets)
        finally:
            world.close()
    return Outcome(blocks, total, by_method)


def _role(cal: Cal, sources: list[Cal], targets: list[Cal]) -> CalendarRole:
    if cal in sources and cal in targets:
        return CalendarRole.BOTH
    return CalendarRole.SOURCE if cal in sources else CalendarRole.TARGET


def demo(world: World) -> tuple[list[Cal], list[Cal]]:
    """The demo's five calendars in two accounts, each a source and (but the read-only
    holidays) a target of the others."""
    cals = [*connect_seeded(world, WORK), *connect_seeded(world, PERSONAL)]
    return cals, [c for c in cals if c.provider_id != HOLIDAYS]


def dense(world: World) -> tuple[list[Cal], list[Cal]]:
    """Tomorrow from 09:00 to 17:00, back to back, MEETING_MIN-minute meetings taking turns
    in SOURCES calendars (so no source alone is back to back); TARGETS other calendars."""
    names = [f"Source {n}" for n in range(2, SOURCES + 1)] + [
        f"Target {n}" for n in range(1, TARGETS + 1)
    ]
    made = world.account("dense@example.com", *names)
    sources = [made["primary"], *(made[n] for n in names[: SOURCES - 1])]
    targets = [made[n] for n in names[SOURCES - 1 :]]
    day = datetime.now(UTC).replace(hour=DAY_START_H, minute=0, second=0, microsecond=0)
    day += timedelta(days=1)
    for n in range(MEETINGS):
        start = day + timedelta(minutes=MEETING_MIN * n)
        world.insert(
            sources[n % SOURCES],
            summary=f"Meeting {n}",
            start={"dateTime": start.isoformat()},
            end={"dateTime": (start + timedelta(minutes=MEETING_MIN)).isoformat()},
        )
    return sources, targets


def measure(table: Table, tmp: Path) -> None:
    found: dict[tuple[str, bool, bool], Outcome] = {}
    for label, scenario, build in (("demo", "demo", demo), ("dense", "empty", dense)):
        for merge in (False, True):
            for later in (True, False):
                name = f"{label}-{'merged' if merge else 'plain'}-{'later' if later else 'all'}"
                found[label, merge, later] = run(
                    tmp, name, scenario, build, merge=merge, targets_later=later
                )
    for label, what in (
        ("demo", "the demo's 5 calendars (2 accounts)"),
        (
            "dense",
            f"a dense day: {MEETINGS} back-to-back {MEETING_MIN}-min meetings from "
            f"{SOURCES} sources, {TARGETS} targets",
        ),
    ):
        plain, merged = found[label, False, True], found[label, True, True]
        table.add(
            f"7. Merging, {what}: blocks / writes to fill the targets",
            f"merged: {merged.blocks} blocks, {merged.writes} writes",
            f"unmerged, same run: {plain.blocks} blocks, {plain.writes} writes",
            f"writes {merged.writes / plain.writes:.2f}x unmerged "
            f"({plain.writes - merged.writes} saved), "
            f"blocks {merged.blocks / plain.blocks:.2f}x",
            merged.writes < plain.writes and merged.blocks < plain.blocks,
        )
    table.notes.append(
        "Merging: calsync's engine in the benchmark's process against a fresh emulator per run "
        "(SQLite); writes are the emulator's count of events.insert/patch/update/delete. "
        "Blocks / writes to fill the targets: the sources are read first, then the targets are "
        "turned on and synced (as when a calendar is added as a target, or merging is turned "
        "on), so the planner knows every event when it writes. Every calendar on from the "
        "start and synced in turn, a target's merged block is rewritten each time a later "
        "source's events join it: writes merged / unmerged "
        + ", ".join(
            f"{label} {found[label, True, False].writes} / {found[label, False, False].writes}"
            for label in ("demo", "dense")
        )
        + ". The demo is seeded around the day of the run, so its counts vary a little with "
        "the weekday."
    )
