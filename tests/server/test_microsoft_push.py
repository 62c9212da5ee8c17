"""Graph push end to end through the server: a subscription per synced Microsoft calendar made
through the Graph emulator (which validates our webhook first), changes arriving as Graph's
notifications and becoming blocks in Google, forged clientStates refused, and Graph's
lifecycle notices obeyed. The scheduler's poll is an hour away: only push moves anything."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, func, select

from calsync_server.db.models import Notification, PushSubscription, SyncJob
from calsync_server.emulators.google.runner import RunningEmulator
from shared.domain import ChannelState
from tests.server.conftest import ServerWorld, microsoft_world
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.connect import connect
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.waiting import wait_until
from tests.support.world import Cal, at


@pytest.fixture
def ms_world(
    emulator: RunningEmulator, graph: GraphEndpoints, database_url: str, tmp_path: Path
) -> Iterator[tuple[ServerWorld, MicrosoftDriver]]:
    built = microsoft_world(
        emulator, graph, database_url, tmp_path / "home", poll_interval_seconds=3600.0
    )
    driver = MicrosoftDriver(graph)
    try:
        yield built, driver
    finally:
        driver.admin.delete("/emulator/faults")
        driver.close()
        built.close()


def instant(hours: float, days: int = 1) -> datetime:
    return datetime.fromisoformat(at(hours, days).replace("Z", "+00:00"))


def subscription(world: ServerWorld, cal: Cal) -> PushSubscription | None:
    """The calendar's live Graph subscription once Graph has answered its create."""
    with Session(world.db) as session:
        return session.exec(
            select(PushSubscription).where(
                PushSubscription.calendar_id == cal.id,
                PushSubscription.provider == "microsoft",
                PushSubscription.state == ChannelState.ACTIVE,
                col(PushSubscription.remote_id).is_not(None),
            )
        ).first()


def wait_for_subscription(world: ServerWorld, cal: Cal, *, not_key: str = "") -> PushSubscription:
    def made() -> PushSubscription | None:
        found = subscription(world, cal)
        return found if found is not None and found.key != not_key else None

    found = wait_until(made, what=f"a Graph subscription for calendar {cal.id}")
    assert found is not None
    return found


def graph_subscriptions(driver: MicrosoftDriver, cal: Cal) -> dict[str, dict[str, Any]]:
    """Graph's subscriptions to the calendar, as the emulator holds them."""
    held = driver.admin.get("/emulator/subscriptions").json()
    return {s["id"]: s for s in held if s["calendar_id"] == cal.provider_id}


def as_graph_sees_it(driver: MicrosoftDriver, remote_id: str) -> dict[str, Any]:
    """The subscription as the mailbox reads it from Graph (with its clientState)."""
    found: dict[str, Any] = driver._call("GET", f"/subscriptions/{remote_id}").json()
    return found


def notices(world: ServerWorld, key: str) -> list[tuple[str, str]]:
    """(kind, outcome) of every notification recorded for the subscription, in order."""
    with Session(world.db) as session:
        rows = session.exec(
            select(Notification)
            .where(Notification.channel_id == key)
            .order_by(col(Notification.id))
        ).all()
    return [(n.kind, str(n.outcome)) for n in rows]


def jobs(world: ServerWorld, cal: Cal) -> int:
    with Session(world.db) as session:
        return session.exec(
            select(func.count()).select_from(SyncJob).where(SyncJob.calendar_id == cal.id)
        ).one()


def google_starts(world: ServerWorld, cal: Cal) -> list[str]:
    return sorted(b["start"]["dateTime"] for b in world.blocks(cal))


def channel_row(api: httpx.Client, cal: Cal) -> dict[str, Any]:
    """The calendar's row in the API's channels (what the dashboard's Channels screen shows)."""
    answer = api.get("/api/v1/channels")
    assert answer.status_code == 200, answer.text
    (row,) = [r for r in answer.json() if r["calendar_id"] == cal.id]
    return dict(row)


def test_graph_notifications_drive_the_sync_and_its_lifecycle_notices_are_obeyed(
    ms_world: tuple[ServerWorld, MicrosoftDriver], unique: str
) -> None:
    world, ms = ms_world
    home = world.account(f"home-{unique}@example.com")["primary"]
    (work,) = connect(world, ms, "Work")
    world.configure(home, work)
    world.start()
    api: httpx.Client
    with world.api() as api:
        # One subscription for the Microsoft calendar, made at Graph after its validation
        # handshake reached our webhook (Graph refuses the create otherwise), whose
        # clientState is the subscription's secret; Google's calendar has its channel.
        first = wait_for_subscription(world, work)
        world.wait_for_channels(home)
        assert first.remote_id is not None
        assert first.address == f"{world.url}webhooks/microsoft/{first.key}"
        held = graph_subscriptions(ms, work)
        assert list(held) == [first.remote_id]
        assert held[first.remote_id]["notification_url"] == first.address
        assert held[first.remote_id]["lifecycle_url"] == first.address
        row = channel_row(api, work)
        assert (row["provider"], row["account_state"], row["notice"]) == (
            "microsoft",
            "active",
            None,
        )
        seen = as_graph_sees_it(ms, first.remote_id)
        assert seen["clientState"] == first.secret
        assert seen["resource"] == f"me/calendars/{work.provider_id}/events"
        wait_until(lambda: world.settled(api), what="the first syncs")

        # A change in Microsoft arrives as Graph's notification, queues a sync of that
        # calendar, and becomes a block in Google.
        standup = ms.add(work.provider_id, PersonEvent("Standup", instant(14), instant(15)))
        wait_until(lambda: google_starts(world, home) == [at(14)], what="the standup's block")
        assert {"enqueued", "coalesced"} & {
            o for k, o in notices(world, first.key) if k == "changed"
        }
        ms.move(work.provider_id, standup, instant(16), instant(17))
        wait_until(lambda: google_starts(world, home) == [at(16)], what="the moved block")

        # A notification with a wrong clientState is refused, recorded, and queues nothing.
        wait_until(lambda: world.settled(api), what="the syncs of the move")
        before = jobs(world, work)
        forged = {
            "subscriptionId": first.remote_id,
            "changeType": "updated",
            "clientState": "guessed",
            "resource": f"Users/x/Events/{standup}",
            "resourceData": {"id": standup},
        }
        answer = httpx.post(first.address, json={"value": [forged]}, timeout=10)
        assert answer.status_code == 403, answer.text
        assert notices(world, first.key)[-1] == ("changed", "forged")
        assert jobs(world, work) == before

        # reauthorizationRequired: renewed in place now (same subscription at Graph).
        answer = ms.admin.post(
            f"/emulator/subscriptions/{first.remote_id}/lifecycle",
            json={"event": "reauthorizationRequired"},
        )
        assert answer.status_code == 200, answer.text

        def renewed() -> PushSubscription | None:
            now = subscription(world, work)
            return (
                now
                if now is not None
                and now.renewed_at != first.renewed_at
                and now.renew_requested_at is None
                else None
            )

        again = wait_until(renewed, what="renewal in place after reauthorizationRequired")
        assert again is not None
        assert (again.key, again.remote_id) == (first.key, first.remote_id)
        assert ("reauthorize", "lifecycle") in notices(world, first.key)
        assert list(graph_subscriptions(ms, work)) == [first.remote_id]
        # The channels' row names the latest lifecycle notice (a forged one would not count).
        assert channel_row(api, work)["notice"] == "reauthorize"

        # missed: a sync of the calendar.
        wait_until(lambda: world.settled(api), what="quiet before 'missed'")
        before = jobs(world, work)
        answer = ms.admin.post(
            f"/emulator/subscriptions/{first.remote_id}/lifecycle", json={"event": "missed"}
        )
        assert answer.status_code == 200, answer.text
        wait_until(lambda: jobs(world, work) > before, what="a sync after 'missed'")
        assert {"enqueued", "coalesced"} & {
            o for k, o in notices(world, first.key) if k == "missed"
        }
        assert channel_row(api, work)["notice"] == "missed"

        # subscriptionRemoved: a new subscription, and a sync.
        wait_until(lambda: world.settled(api), what="quiet before 'subscriptionRemoved'")
        before = jobs(world, work)
        answer = ms.admin.post(
            f"/emulator/subscriptions/{first.remote_id}/lifecycle",
            json={"event": "subscriptionRemoved"},
        )
        assert answer.status_code == 200, answer.text
        second = wait_for_subscription(world, work, not_key=first.key)
        assert second.remote_id != first.remote_id
        assert list(graph_subscriptions(ms, work)) == [second.remote_id]
        # Heard on the subscription since replaced: still the calendar's latest notice.
        row = channel_row(api, work)
        assert (row["notice"], row["channel_id"]) == ("removed", second.remote_id)
        wait_until(lambda: jobs(world, work) > before, what="a sync after 'subscriptionRemoved'")
        ms.delete(work.provider_id, standup)
        wait_until(lambda: google_starts(world, home) == [], what="the delete through the new one")

        # Every notification Graph sent was answered 2xx in time: none needed a retry.
        for held_now in graph_subscriptions(ms, work).values():
            assert held_now["attempts"] == held_now["delivered"] > 0, held_now


def test_a_subscription_gone_at_graph_is_made_anew_and_syncs_at_once(
    ms_world: tuple[ServerWorld, MicrosoftDriver], unique: str
) -> None:
    """Graph dropped the subscription without a word; a change made meanwhile announced
    nothing. When renewal finds it gone, the new subscription's first act is an incremental
    sync, which brings the change (the next poll is an hour away)."""
    world, ms = ms_world
    home = world.account(f"home-{unique}@example.com")["primary"]
    (work,) = connect(world, ms, "Work")
    world.configure(home, work)
    world.start()
    with world.api() as api:
        first = wait_for_subscription(world, work)
        wait_until(lambda: world.settled(api), what="the first syncs")
        assert first.remote_id is not None
        ms._call("DELETE", f"/subscriptions/{first.remote_id}")
        assert graph_subscriptions(ms, work) == {}
        ms.add(work.provider_id, PersonEvent("Review", instant(11), instant(12)))
        # Graph asks for reauthorization (as it does before expiry): renewal meets a 404.
        notice = {
            "subscriptionId": first.remote_id,
            "subscriptionExpirationDateTime": at(0, days=2),
            "clientState": first.secret,
            "lifecycleEvent": "reauthorizationRequired",
        }
        answer = httpx.post(first.address, json={"value": [notice]}, timeout=10)
        assert answer.status_code == 202, answer.text
        second = wait_for_subscription(world, work, not_key=first.key)
        assert list(graph_subscriptions(ms, work)) == [second.remote_id]
        wait_until(lambda: google_starts(world, home) == [at(11)], what="the review's block")
        assert datetime.now(UTC) > second.created_at


def test_the_notices_graph_sends_together_for_one_change_queue_one_sync_at_once(
    ms_world: tuple[ServerWorld, MicrosoftDriver], unique: str
) -> None:
    """Graph follows a create with an update, in one POST: one announcement. The second
    notice must not count as a later one joining the queued sync (which would hold it back
    for a pause in the notifications, DEBOUNCE_SECONDS, on every new Outlook event)."""
    world, ms = ms_world
    home = world.account(f"home-{unique}@example.com")["primary"]
    (work,) = connect(world, ms, "Work")
    world.configure(home, work)
    world.start()
    with world.api() as api:
        first = wait_for_subscription(world, work)
        wait_until(lambda: world.settled(api), what="the first syncs")
        items = [
            {
                "subscriptionId": first.remote_id,
                "changeType": change,
                "clientState": first.secret,
                "resource": "Users/x/Events/e1",
                "resourceData": {"id": "e1"},
            }
            for change in ("created", "updated")
        ]

        def announce() -> bool:
            # Into an empty queue (a sync the scheduler queued meanwhile would take them both).
            wait_until(lambda: world.settled(api), what="an empty queue")
            answer = httpx.post(first.address, json={"value": items}, timeout=10)
            assert answer.status_code == 202, answer.text
            outcomes = answer.json()["outcomes"]
            assert outcomes[1] == "coalesced"
            return bool(outcomes[0] == "enqueued")

        wait_until(announce, what="the notices queueing a sync")
        with Session(world.db) as session:
            made = session.exec(
                select(SyncJob).where(SyncJob.calendar_id == work.id, SyncJob.kind == "webhook")
            ).all()
        job = max(made, key=lambda j: j.created_at)
        assert job.run_after == job.created_at
