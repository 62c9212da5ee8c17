"""Push channels and the scheduler: made, renewed, stopped, replaced by polling when push is
missing or broken, and the daily full reconcile."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime
from itertools import pairwise as pairs
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlmodel import Session, select

from calsync_server.db.models import PushSubscription
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.push.channels import LEASE, LEASE_TTL, ChannelKeeper
from calsync_server.scheduler import SAFETY_POLL_FACTOR
from shared.clock import SystemClock
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until
from tests.support.world import Cal, timed


@pytest.fixture
def make_world(emulator: RunningEmulator, tmp_path: Path) -> Iterator[Any]:
    """A server world on SQLite with the given settings: for scenarios about timing, where the
    database adds nothing the parametrised tests do not already cover."""
    made: list[ServerWorld] = []

    def make(**settings: Any) -> ServerWorld:
        home = tmp_path / f"home{len(made)}"
        url = f"sqlite:///{tmp_path / f'calsync{len(made)}.db'}"
        made.append(ServerWorld(emulator, url, home, **settings))
        return made[-1]

    yield make
    for world in made:
        world.close()


def emulator_channels(world: ServerWorld) -> dict[str, dict[str, Any]]:
    """The channels the emulator would push to, by id."""
    answer = world.admin.get("/emulator/channels")
    assert answer.status_code == 200, answer.text
    return {c["id"]: c for c in answer.json()}


def api_channels(api: httpx.Client) -> dict[int, dict[str, Any]]:
    answer = api.get("/api/v1/channels")
    assert answer.status_code == 200, answer.text
    return {c["calendar_id"]: c for c in answer.json()}


def rows(world: ServerWorld, cal: Cal) -> list[PushSubscription]:
    with Session(world.db) as session:
        return list(
            session.exec(select(PushSubscription).where(PushSubscription.calendar_id == cal.id))
        )


def kinds_that_created_blocks(world: ServerWorld, api: httpx.Client, cal: Cal) -> list[str]:
    """The kinds of the syncs of `cal` that wrote blocks (waiting for the first one's log: the
    blocks are visible at the provider a moment before the sync commits its log)."""
    return wait_until(
        lambda: [log["kind"] for log in world.logs(api, cal) if log["blocks_created"]],
        what="a sync log with blocks created",
    )


def two_accounts(world: ServerWorld, unique: str, *others: str) -> tuple[dict[str, Cal], Cal]:
    work = world.account(f"work-{unique}@example.com", *others)
    home = world.account(f"home-{unique}@example.com")["primary"]
    return work, home


def test_synced_calendars_get_channels_and_lose_them_when_sync_is_turned_off(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work, home = two_accounts(world, unique, "Team")
    world.configure(work["primary"], home)  # Team stays off
    world.start()
    with closing(world.api()) as api:
        world.wait_for_channels(work["primary"], home)
        live = emulator_channels(world)
        ours = {}
        for cal in (work["primary"], home):
            channel = world.channel(cal)
            assert channel is not None
            assert channel.state == "active"
            # Our own key in the path: the parser of the provider it names reads what comes.
            assert channel.address == world.url + f"webhooks/google/{channel.key}"
            assert channel.key in live
            assert live[channel.key]["calendar_id"] == cal.provider_id
            ours[cal] = channel
        assert rows(world, work["Team"]) == []
        assert work["Team"].provider_id not in {c["calendar_id"] for c in live.values()}
        shown = api_channels(api)
        assert set(shown) == {work["primary"].id, home.id}
        assert shown[home.id]["state"] == "active"
        assert shown[home.id]["polling"] is False
        assert shown[home.id]["push"] == "active"
        assert shown[home.id]["channel_id"] == ours[home].key

        answer = api.patch(f"/api/v1/calendars/{home.id}", json={"sync_enabled": False})
        assert answer.status_code == 200, answer.text
        (row,) = rows(world, home)
        assert row.state == "stopped"
        assert row.stopped_at is not None
        assert ours[home].key not in emulator_channels(world)
        assert home.id not in api_channels(api)
        # The other calendar keeps its channel, and the scheduler does not bring the stopped
        # one back: a later tick sees sync off.
        assert ours[work["primary"]].key in emulator_channels(world)
        wait_until(lambda: world.settled(api), what="the queue to drain")
        assert [r.state for r in rows(world, home)] == ["stopped"]


def test_a_calendar_turned_on_gets_its_channel_before_the_schedulers_next_tick(
    server_world: ServerWorld, unique: str
) -> None:
    """Turning sync on asks the scheduler for a tick now: the calendar's changes are pushed from
    then on, not only after the next regular tick (up to 5 s later, while nobody announces
    them)."""
    world = server_world
    work, home = two_accounts(world, unique, "Team")
    world.configure(work["primary"], home)
    world.start()
    assert world.runtime is not None
    interval = world.runtime.scheduler.interval_seconds
    assert interval == 5.0
    with closing(world.api()) as api:
        # A tick has just made these: the next regular one is about `interval` away.
        world.wait_for_channels(work["primary"], home)
        world.enable(api, work["Team"])
        # Well before that tick, even on a loaded machine (the nudged tick takes ~0.1 s).
        world.wait_for_channels(work["Team"], timeout=interval - 1.5)
        channel = world.channel(work["Team"])
        assert channel is not None
        assert channel.key in emulator_channels(world)


def test_channels_are_stopped_when_the_public_url_goes_away(make_world: Any, unique: str) -> None:
    world: ServerWorld = make_world(poll_interval_seconds=0.5)
    work, home = two_accounts(world, unique)
    world.configure(work["primary"], home)
    world.start()
    world.wait_for_channels(work["primary"], home)
    made = {c.key for c in rows(world, work["primary"]) + rows(world, home)}
    assert made <= emulator_channels(world).keys()
    world.stop()

    world.start(push=False)  # restarted without CALSYNC_PUBLIC_URL
    with closing(world.api()) as api:
        wait_until(
            lambda: not made & emulator_channels(world).keys(),
            what="the channels stopped at the provider",
        )
        states = {r.state for r in rows(world, work["primary"]) + rows(world, home)}
        assert states == {"stopped"}
        assert all(c["polling"] for c in api_channels(api).values())


def test_two_processes_keeping_channels_make_one_per_calendar(make_world: Any, unique: str) -> None:
    world: ServerWorld = make_world()
    work, home = two_accounts(world, unique, "Team")
    cals = [work["primary"], work["Team"], home]
    world.configure(*cals)
    # Nobody listens there: the channels only need to exist at the provider.
    settings = msgspec.structs.replace(world.settings, public_url="http://127.0.0.1:9/")
    keepers = [
        ChannelKeeper(world.db, settings, SystemClock(), world.vault, world.engine.provider_factory)
        for _ in range(2)
    ]
    # Slow watch calls: without one keeper at a time, the second pass would read the channels
    # while the first is still making them, and make its own.
    world.admin.post(
        "/emulator/faults",
        json={"method": "events.watch", "status": 200, "times": 100, "delay_ms": 200},
    ).raise_for_status()

    with ThreadPoolExecutor(2) as pool:
        changes = list(pool.map(lambda keeper: keeper.maintain(), keepers))

    assert sorted(len(c.created) for c in changes) == [0, len(cals)]
    live = [r for cal in cals for r in rows(world, cal) if r.state != "stopped"]
    assert Counter(r.calendar_id for r in live) == {cal.id: 1 for cal in cals}
    assert {r.key for r in live} <= emulator_channels(world).keys()
    # Let go after the pass: either keeper can take the next one.
    assert keepers[0].leases.take(LEASE, LEASE_TTL)
    assert not keepers[1].leases.take(LEASE, LEASE_TTL)


def test_a_calendar_that_cannot_sync_is_retried_every_poll_interval_not_every_tick(
    make_world: Any, unique: str
) -> None:
    world: ServerWorld = make_world(poll_interval_seconds=1.0)  # a tick every 0.25 s
    _work, home = two_accounts(world, unique)
    world.configure(home)
    world.fault("events.list", 404, times=100_000)
    world.start(push=False)
    with closing(world.api()) as api:
        failures = wait_until(
            lambda: (found := [x for x in world.logs(api, home) if x["error"]])[2:] and found,
            what="three failed syncs",
        )
        starts = sorted(datetime.fromisoformat(x["started_at"]) for x in failures)
        gaps = [(b - a).total_seconds() for a, b in pairs(starts)]
        assert min(gaps) >= 0.9, gaps

        world.admin.delete("/emulator/faults").raise_for_status()
        wait_until(
            lambda: any(x["status"] == "success" for x in world.logs(api, home)),
            what="a successful sync once the calendar is back",
        )


def test_channels_are_renewed_before_they_expire_and_push_keeps_working(
    make_world: Any, unique: str
) -> None:
    world: ServerWorld = make_world(
        poll_interval_seconds=3.0,  # a tick every 0.75 s; calendars with push polled every 30 s
        channel_ttl_seconds=4.0,
        channel_renew_before_seconds=2.0,
    )
    work, home = two_accounts(world, unique)
    source = work["primary"]
    world.configure(source, home)
    world.start()
    with closing(world.api()) as api:
        world.wait_for_channels(source, home)
        first = world.channel(source)
        assert first is not None

        def renewed() -> PushSubscription | None:
            channel = world.channel(source)
            return channel if channel and channel.key != first.key else None

        second = wait_until(renewed, what="a renewed channel")
        wait_until(
            lambda: first.key not in emulator_channels(world),
            what="the old channel stopped at the provider",
        )
        # Stopped, not merely expired: Google names it among the channels channels.stop ended.
        # The listing first, then the stopped ones: one stopped between the reads is in both.
        live = emulator_channels(world)
        stopped = world.admin.get("/emulator/channels/stopped").json()
        assert first.key in stopped
        old = next(r for r in rows(world, source) if r.key == first.key)
        assert old.state == "stopped"
        # The new one is Google's: live, or already renewed in turn (a channel lives 4 s here)
        # and stopped, which Google does only for a channel it has.
        assert second.key in live or second.key in stopped

        wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")
        world.insert(source, **timed("Standup", 9, 10))
        blocks = wait_until(lambda: world.blocks(home), what="the standup's block", timeout=15)
        assert [b["summary"] for b in blocks] == ["Busy"]
        assert kinds_that_created_blocks(world, api, source) == ["webhook"]


def test_without_a_public_url_calendars_are_polled(make_world: Any, unique: str) -> None:
    world: ServerWorld = make_world(poll_interval_seconds=0.3)
    work, home = two_accounts(world, unique)
    source = work["primary"]
    world.configure(source, home)
    world.start(push=False)
    with closing(world.api()) as api:
        wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")
        shown = api_channels(api)
        assert {c: (s["state"], s["polling"]) for c, s in shown.items()} == {
            source.id: (None, True),
            home.id: (None, True),
        }
        world.insert(source, **timed("Lunch", 12, 13))
        blocks = wait_until(lambda: world.blocks(home), what="the lunch block by polling")
        assert [b["summary"] for b in blocks] == ["Busy"]
        assert kinds_that_created_blocks(world, api, source) == ["polling"]
        assert rows(world, source) == rows(world, home) == []
        watched = {c["calendar_id"] for c in emulator_channels(world).values()}
        assert not watched & {source.provider_id, home.provider_id}


def test_a_channel_that_cannot_be_made_falls_back_to_polling_until_it_can(
    make_world: Any, unique: str
) -> None:
    world: ServerWorld = make_world(poll_interval_seconds=0.3)
    work, home = two_accounts(world, unique)
    source = work["primary"]
    world.configure(source, home)
    world.fault("events.watch", 500, times=100_000)
    world.start()
    with closing(world.api()) as api:
        failing = wait_until(
            lambda: (
                (shown := api_channels(api).get(source.id))
                and shown["state"] == "failing"
                and shown
            ),
            what="the source's channel shown as failing",
        )
        assert failing["polling"] is True
        assert failing["failures"] >= 1
        assert failing["channel_id"] is None
        assert "500" in failing["last_error"], failing  # the provider's refusal, for the user
        assert not emulator_channels(world).keys() & {c.key for c in rows(world, source)}

        wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")
        world.insert(source, **timed("Gym", 7, 8))
        blocks = wait_until(lambda: world.blocks(home), what="the gym block by polling")
        assert [b["summary"] for b in blocks] == ["Busy"]
        assert kinds_that_created_blocks(world, api, source) == ["polling"]

        world.admin.delete("/emulator/faults").raise_for_status()
        world.wait_for_channels(source, home, timeout=15)
        shown = api_channels(api)[source.id]
        assert shown["state"] == "active"
        assert shown["polling"] is False
        working = world.channel(source)
        assert working is not None
        assert working.key in emulator_channels(world)
        # The failure record is closed, not left to speak for the calendar.
        assert [r.state for r in rows(world, source) if r.failures] == ["stopped"]


def test_a_channel_that_misses_changes_is_replaced(make_world: Any, unique: str) -> None:
    # Safety polls (of a calendar whose channel looks healthy) every 2 s.
    world: ServerWorld = make_world(poll_interval_seconds=2.0 / SAFETY_POLL_FACTOR)
    work, home = two_accounts(world, unique)
    source = work["primary"]
    world.configure(source, home)
    world.start()
    with closing(world.api()) as api:
        world.wait_for_channels(source, home)
        wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")
        deaf = world.channel(source)
        assert deaf is not None
        # Google drops the channel without telling calsync: changes go unannounced.
        world.service(source.email).channels().stop(
            body={"id": deaf.key, "resourceId": deaf.resource}
        ).execute()
        world.insert(source, **timed("Call", 15, 16))
        blocks = wait_until(lambda: world.blocks(home), what="the call's block by safety polling")
        assert kinds_that_created_blocks(world, api, source) == ["polling"]
        assert len(blocks) == 1
        wait_until(
            lambda: api_channels(api)[source.id]["unannounced_changes"] >= 1,
            what="the unannounced change counted",
        )
        world.insert(source, **timed("Call 2", 17, 18))

        def replaced() -> PushSubscription | None:
            channel = world.channel(source)
            return channel if channel and channel.key != deaf.key else None

        fresh = wait_until(replaced, what="a replacement channel", timeout=15)
        assert fresh.key in emulator_channels(world)
        assert next(r for r in rows(world, source) if r.key == deaf.key).state in ("stopped")
        wait_until(lambda: len(world.blocks(home)) == 2, what="the second call's block")


def test_the_scheduled_full_reconcile_removes_orphans_and_respects_hand_deletions(
    make_world: Any, unique: str
) -> None:
    world: ServerWorld = make_world(
        poll_interval_seconds=0.3,
        full_reconcile_interval_hours=0.0005,  # 1.8 s
    )
    work, home = two_accounts(world, unique)
    source = work["primary"]
    world.configure(source, home)
    world.insert(source, **timed("Offsite", 10, 11))
    world.start(push=False)
    with closing(world.api()) as api:
        (block,) = wait_until(lambda: world.blocks(home), what="the offsite block")
        # Before the orphan appears: a full reconcile already running may be the one to find it.
        seen = {log["id"] for log in world.logs(api, home) + world.logs(api, source)}
        # Something calsync-marked that no source explains (a crash, another install).
        orphan = world.insert(
            home,
            **timed(
                "Busy",
                14,
                15,
                extendedProperties={
                    "private": {"calsync": "busy-block", "calsync_source": "bogus:nothing"}
                },
            ),
        )
        # And the user deletes the real block by hand.
        world.service(home.email).events().delete(
            calendarId=home.provider_id, eventId=block["id"]
        ).execute()

        def full_syncs_after() -> list[dict[str, Any]]:
            logs = world.logs(api, home) + world.logs(api, source)
            return [x for x in logs if x["kind"] == "full" and x["id"] not in seen]

        wait_until(
            lambda: orphan["id"] not in {b["id"] for b in world.blocks(home)},
            what="the orphan removed",
            timeout=15,
        )
        # The block goes at the provider a moment before its sync commits its log.
        wait_until(
            lambda: any(x["blocks_deleted"] for x in full_syncs_after()),
            what="a full reconcile's log with the orphan deleted",
        )
        wait_until(lambda: len(full_syncs_after()) >= 3, what="more full reconciles", timeout=15)
        assert world.blocks(home) == []
        assert all(x["status"] == "success" for x in full_syncs_after()), full_syncs_after()
