"""Push end to end: the emulator's notifications reach the server, which syncs and writes blocks."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from calsync_server.jobs.queue import MAX_DEBOUNCE
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until
from tests.support.world import at, timed


def test_a_change_becomes_blocks_everywhere_driven_only_by_push(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com", "Team")
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.start()  # polling every hour: only push can bring the change below in time
    with world.api() as api:
        world.enable(api, work["primary"], work["Team"], home)
        world.wait_for_channels(work["primary"], work["Team"], home)
        wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")

        world.insert(work["primary"], **timed("Board meeting", 9, 10))

        for target in (work["Team"], home):
            blocks = wait_until(lambda t=target: world.blocks(t), what="the block in a target")
            assert [(b["summary"], b["start"]["dateTime"]) for b in blocks] == [("Busy", at(9))]
        # The log is written just after the blocks: wait for it rather than race it.
        logs = wait_until(
            lambda: [g for g in world.logs(api, work["primary"]) if g["blocks_created"]],
            what="the log of the sync that made the blocks",
        )
        newest = logs[0]
        assert newest["kind"] == "webhook", logs
        assert newest["blocks_created"] == 2
        assert world.blocks(work["primary"]) == []


def test_a_burst_of_200_notifications_costs_a_few_syncs_and_loses_nothing(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work, home = world.work_and_home(unique)
    world.start()
    with world.api() as api:
        world.enable(api, work, home)
        world.wait_for_channels(work, home)
        wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")
        channel = world.channel(work)
        assert channel is not None
        assert channel.last_sequence is not None
        before = {log["id"] for log in world.logs(api, work)}

        # Besides the emulator's own notification of this change, 200 more arrive the way
        # Google sends them, 20 at a time.
        world.insert(work, **timed("Dentist", 14, 15))
        start = channel.last_sequence + 1000

        # One client with a connection pool, as a sender of bursts keeps its connections.
        sender = httpx.Client(
            base_url=world.url, timeout=30, limits=httpx.Limits(max_connections=20)
        )

        def notify(n: int) -> int:
            return sender.post(
                "webhooks/google",
                headers={
                    "X-Goog-Channel-ID": channel.key,
                    "X-Goog-Channel-Token": channel.secret,
                    "X-Goog-Resource-ID": channel.resource or "",
                    "X-Goog-Resource-State": "exists",
                    "X-Goog-Message-Number": str(start + n),
                    "X-Goog-Resource-URI": "https://example/calendars/x/events",
                },
            ).status_code

        began = time.monotonic()
        with sender, ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(notify, range(200)))
        lasted = time.monotonic() - began
        assert statuses == [200] * 200

        blocks = wait_until(lambda: world.blocks(home), what="the dentist block in home")
        assert [b["start"]["dateTime"] for b in blocks] == [at(14)]
        wait_until(lambda: world.settled(api), what="the queue to drain")
        burst_syncs = [log for log in world.logs(api, work) if log["id"] not in before]
        # The change's own sync and one after the burst. A notice that finds no job waiting
        # queues one due at once (the first notification is never delayed): on a loaded machine
        # a lone notice at the burst's head may start a sync before the rest join the next job,
        # so one more. And however long the burst lasts, its waiting sync runs at most
        # MAX_DEBOUNCE after it was queued: one more for each MAX_DEBOUNCE the burst spanned.
        allowed = 3 + int(lasted / MAX_DEBOUNCE.total_seconds())
        assert 1 <= len(burst_syncs) <= allowed, (lasted, burst_syncs)
