"""The server keeps going when its database goes away mid-sync and comes back: workers and the
scheduler survive, notifications meanwhile get 503 and are remembered, /readyz says not ready
meanwhile, and everything converges by itself once the database is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync_server.emulators.google.runner import RunningEmulator
from tests.server.conftest import ServerWorld
from tests.server.pg_cluster import Cluster, find_bin
from tests.support.google_service import calendar_service
from tests.support.waiting import wait_until
from tests.support.world import timed

EVENTS = 300


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    initdb = find_bin("initdb")
    if initdb is None:
        pytest.skip("PostgreSQL's initdb is not installed: no throwaway cluster to stop")
    made = Cluster(initdb)
    try:
        made.start()
        yield made
    finally:
        made.remove()


def _readiness(world: ServerWorld) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{world.url}readyz", timeout=15)
    return answer.status_code, {c["name"]: c for c in answer.json()["checks"]}


def _errors(world: ServerWorld, where: str) -> float:
    assert world.runtime is not None
    # The counter alone: the registry's other collectors read the database.
    for family in world.runtime.metrics.errors.collect():
        for sample in family.samples:
            if sample.name == "calsync_errors_total" and sample.labels == {"where": where}:
                return float(sample.value)
    return 0.0


def _given_up(world: ServerWorld) -> int:
    """Notifications the emulator gave up delivering, over its channels."""
    return sum(int(c["failed"]) for c in world.admin.get("/emulator/channels").json())


def _insert(world: ServerWorld, cal: Any, body: dict[str, Any]) -> None:
    """Through a client of its own: the world's kept one idles past the emulator's keep-alive
    while the test waits, and its next request meets a closed connection."""
    service = calendar_service(world.emulator.url, world.tokens[cal.email]["access_token"])
    try:
        service.events().insert(calendarId=cal.provider_id, body=body).execute()
    finally:
        service.close()


def _insert_many(world: ServerWorld, cal: Any, count: int) -> None:
    service = world.service(cal.email)
    for chunk in range(0, count, 100):
        batch = service.new_batch_http_request()
        for i in range(chunk, min(count, chunk + 100)):
            body = timed(f"e{i}", (i % 20) * 0.5, (i % 20) * 0.5 + 0.5, days=1 + i // 20)
            batch.add(service.events().insert(calendarId=cal.provider_id, body=body))
        batch.execute()


def test_postgres_stopped_mid_sync_and_started_again_converges_by_itself(
    cluster: Cluster, emulator: RunningEmulator, tmp_path: Path, unique: str
) -> None:
    url = cluster.create_database(f"calsync_{uuid.uuid4().hex[:8]}")
    world = ServerWorld(emulator, url, tmp_path / "home", poll_interval_seconds=3600.0)
    try:
        work = world.account(f"work-{unique}@example.com")["primary"]
        home = world.account(f"home-{unique}@example.com")["primary"]
        _insert_many(world, work, EVENTS)
        # Block writes answer late: the first sync of `home` takes a while.
        world.admin.post(
            "/emulator/faults",
            json={"method": "events.insert", "status": 200, "times": 10**5, "delay_ms": 1500},
        ).raise_for_status()
        world.start()
        assert _readiness(world)[0] == 200
        with world.api() as api:
            world.enable(api, work, home)
            world.wait_for_channels(work, home)
            channel = world.channel(work)
            assert channel is not None
            assert channel.last_sequence is not None
            wait_until(
                lambda: world.stats()["calls"].get("events.insert", 0) > 0,
                timeout=30,
                what="blocks being written",
            )
            assert world.running(), "the kill must land mid-sync"

            cluster.stop()
            # Meanwhile: not ready, saying why; a notification is refused with 503, and the
            # change made now is announced by the emulator while nobody can record it (its
            # retries run out within the outage).
            _, checks = wait_until(
                lambda: (r := _readiness(world))[0] == 503 and r,
                timeout=20,
                what="readiness to say not ready",
            )
            assert checks["database"]["ok"] is False, checks
            _insert(world, work, timed("Made during the outage", 7, 8, days=40))
            refused = httpx.post(
                f"{world.url}webhooks/google",
                headers={
                    "X-Goog-Channel-ID": channel.key,
                    "X-Goog-Channel-Token": channel.secret,
                    "X-Goog-Resource-ID": channel.resource or "",
                    "X-Goog-Resource-State": "exists",
                    "X-Goog-Message-Number": str(channel.last_sequence + 10**6),
                },
                timeout=15,
            )
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"].isdigit()
            assert world.runtime is not None
            assert world.runtime.webhooks.lost >= 1
            wait_until(
                lambda: any(c["failed"] for c in world.admin.get("/emulator/channels").json()),
                timeout=20,
                what="the emulator giving up a notification",
            )
            # Down until a running sync has met the missing database (not only its provider).
            wait_until(
                lambda: _errors(world, "sync") > 0,
                timeout=60,
                interval=0.1,
                what="a sync failing on the missing database",
            )

            cluster.start()
            world.admin.delete("/emulator/faults").raise_for_status()
            wanted = EVENTS + 1

            def converged() -> bool:
                return len(world.blocks(home)) == wanted and world.settled(api)

            wait_until(converged, timeout=90, interval=0.5, what="every block, queue drained")
            summaries = {b["start"]["dateTime"] for b in world.blocks(home)}
            assert len(summaries) == wanted  # no duplicates
            wait_until(lambda: world.runtime.webhooks.lost == 0, what="lost ones recovered")
            _, checks = wait_until(
                lambda: (r := _readiness(world))[0] == 200 and r,
                timeout=20,
                what="ready again",
            )
            assert checks["workers"]["detail"] == "2 of 2 running", checks
            assert checks["scheduler"]["ok"], checks
            assert checks["queue"]["ok"], checks
            # A change now still goes through push: the workers and the stream of work live.
            _insert(world, work, timed("After", 7, 8, days=41))
            wait_until(lambda: len(world.blocks(home)) == wanted + 1, what="a block after")
            wait_until(lambda: world.settled(api), what="the queue to drain")

            # Down again with nothing running: the only news of this change is a notification
            # nobody could record (the emulator gives up on it), and polling is hourly.
            given_up = _given_up(world)
            cluster.stop()
            _insert(world, work, timed("Announced into the outage", 7, 8, days=42))
            wait_until(lambda: _given_up(world) > given_up, what="the notification given up")
            cluster.start()
            wait_until(
                lambda: len(world.blocks(home)) == wanted + 2,
                timeout=20,
                what="the block of the change announced while the database was down",
            )
    finally:
        world.close()
        world.db.dispose()
