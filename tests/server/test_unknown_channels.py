"""Forged notifications for channels calsync does not know cannot spend a user's provider quota:
each unknown channel is stopped at most once a period, and such stops are capped per account."""

from __future__ import annotations

import threading
import time
import uuid

import httpx

from calsync_server.push.channels import UNKNOWN_STOPS_PER_ACCOUNT
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until

FORGED = 40


def _stops(world: ServerWorld) -> int:
    return int(world.stats()["calls"].get("channels.stop", 0))


def _never_above(probe: int, read: ServerWorld, seconds: float) -> int:
    """Watch the stop count for `seconds` (the stops run after the answers, in the
    background); fail as soon as it passes `probe`. The last count seen."""
    pause = threading.Event()  # never set: bounds the time between two looks
    deadline = time.monotonic() + seconds
    seen = _stops(read)
    while time.monotonic() < deadline:
        assert seen <= probe, f"{seen} channels.stop calls, more than {probe}"
        pause.wait(0.05)
        seen = _stops(read)
    assert seen <= probe, f"{seen} channels.stop calls, more than {probe}"
    return seen


def test_forged_notifications_naming_a_real_calendar_cost_few_stop_calls(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.start(push=False)
    before = _stops(world)
    uri = f"https://www.googleapis.com/calendar/v3/calendars/{work.provider_id}/events"

    def forge(client: httpx.Client, channel_id: str, number: int) -> None:
        answer = client.post(
            "webhooks/google",
            headers={
                "X-Goog-Channel-ID": channel_id,
                "X-Goog-Resource-ID": "forged-resource",
                "X-Goog-Resource-State": "exists",
                "X-Goog-Message-Number": str(number),
                "X-Goog-Resource-URI": uri,
            },
        )
        # Acknowledged like any unknown channel's notification (the provider stops retrying).
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"outcome": "unknown_channel"}

    with httpx.Client(base_url=world.url, timeout=10) as client:
        # One unknown channel, again and again: stopped once.
        for number in range(1, 11):
            forge(client, "forged-repeated", number)
        wait_until(lambda: _stops(world) - before >= 1, what="the repeated channel's stop")
        assert _never_above(before + 1, world, 1.0) == before + 1

        # Many unknown channels naming the same calendar: at most the account's share a
        # minute (the stop above counts in it).
        for number in range(FORGED):
            forge(client, f"forged-{uuid.uuid4().hex}", number + 1)
        cap = before + UNKNOWN_STOPS_PER_ACCOUNT
        wait_until(lambda: _stops(world) >= cap, what="the capped stops")
        assert _never_above(cap, world, 1.5) == cap
    assert UNKNOWN_STOPS_PER_ACCOUNT < FORGED // 4
