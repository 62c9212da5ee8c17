"""A push channel announces only what changes after it starts: what comes before is caught by a
sync right after it exists (issue 13, item 2), and `not_exists` notifications sync too."""

from __future__ import annotations

import httpx
from sqlmodel import Session, select

from calsync_server.db.models import Notification
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until
from tests.support.world import at, timed


def test_events_made_right_after_sync_is_turned_on_reach_every_target_within_seconds(
    server_world: ServerWorld, unique: str
) -> None:
    # Polling every hour (server_world): only push, or a sync right after each channel is
    # made, brings the events below in time.
    world = server_world
    work = world.account(f"work-{unique}@example.com", "Team")
    home = world.account(f"home-{unique}@example.com")["primary"]
    cals = [work["primary"], work["Team"], home]
    world.start()
    with world.api() as api:
        world.enable(api, *cals)
        # At once, as a new user does: the first syncs are running or done, the channels are
        # made at the scheduler's next tick (up to 5 s later), and they never announce these.
        for n, cal in enumerate(cals):
            world.insert(cal, **timed(f"Made at once {n}", 9 + n, 9.5 + n))

        def every_target_has_its_blocks() -> bool:
            for cal in cals:
                starts = sorted(b["start"]["dateTime"] for b in world.blocks(cal))
                wanted = sorted(at(9 + n) for n, other in enumerate(cals) if other != cal)
                if starts != wanted:
                    return False
            return True

        wait_until(every_target_has_its_blocks, timeout=15, what="two blocks in every calendar")
        world.wait_for_channels(*cals)


def test_a_not_exists_notification_syncs_its_calendar(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work, home = world.work_and_home(unique)
    world.start()
    with world.api() as api:
        world.enable(api, work, home)
        world.wait_for_channels(work, home)
        event = world.insert(work, **timed("Review", 11, 12))
        wait_until(lambda: world.blocks(home), what="the review's block")
        wait_until(lambda: world.settled(api), what="the queue to drain")
        channel = world.channel(work)
        assert channel is not None
        assert channel.last_sequence is not None
        # The emulator's channel goes (calsync still counts on it): the deletion below is
        # announced only by the notification this test sends, the way Google says a
        # resource is gone.
        world.service(work.email).channels().stop(
            body={"id": channel.key, "resourceId": channel.resource}
        ).execute()
        world.service(work.email).events().delete(
            calendarId=work.provider_id, eventId=event["id"]
        ).execute()
        answer = httpx.post(
            f"{world.url}webhooks/google",
            headers={
                "X-Goog-Channel-ID": channel.key,
                "X-Goog-Channel-Token": channel.secret,
                "X-Goog-Resource-ID": channel.resource or "",
                "X-Goog-Resource-State": "not_exists",
                "X-Goog-Message-Number": str(channel.last_sequence + 1),
                "X-Goog-Resource-URI": f"https://example/calendars/{work.provider_id}/events",
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"outcome": "enqueued"}

        wait_until(lambda: world.blocks(home) == [], what="the block removed")
        logs = wait_until(
            lambda: [g for g in world.logs(api, work) if g["blocks_deleted"]],
            what="the log of the sync that removed it",
        )
        assert logs[0]["kind"] == "webhook", logs
        with Session(world.db) as session:
            recorded = session.exec(
                select(Notification).where(
                    Notification.channel_id == channel.key,
                    # "not_exists" is a change like "exists", in calsync's words.
                    Notification.kind == "changed",
                    Notification.message_number == channel.last_sequence + 1,
                )
            ).all()
        assert [n.outcome for n in recorded] == ["enqueued"]
