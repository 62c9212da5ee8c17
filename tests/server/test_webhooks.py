"""`POST /webhooks/google` as Google (and a forger, and a careless proxy) would call it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, func, select

from calsync_server.db.models import Notification, PushSubscription, SyncJob
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from tests.server.conftest import ServerWorld
from tests.support.held import HeldAnswers
from tests.support.waiting import wait_until
from tests.support.world import Cal, timed


def headers_of(channel: PushSubscription, number: int, state: str = "exists") -> dict[str, str]:
    """What Google sends for `channel` (its expiration header included)."""
    return {
        "X-Goog-Channel-ID": channel.key,
        "X-Goog-Channel-Token": channel.secret,
        "X-Goog-Channel-Expiration": "Tue, 19 Nov 2030 01:13:52 GMT",
        "X-Goog-Resource-ID": channel.resource or "",
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": str(number),
        "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/x/events",
        "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
    }


def notify(world: ServerWorld, headers: dict[str, str], content: bytes = b"") -> httpx.Response:
    return httpx.post(world.url + "webhooks/google", headers=headers, content=content, timeout=30)


def outcomes(world: ServerWorld, channel_id: str) -> list[tuple[int | None, str]]:
    """The recorded notifications of a channel: (message number, outcome), oldest first."""
    with Session(world.db) as session:
        rows = session.exec(
            select(Notification)
            .where(Notification.channel_id == channel_id)
            .order_by(col(Notification.id))
        )
        return [(n.message_number, str(n.outcome)) for n in rows]


def jobs(world: ServerWorld, cal: Cal) -> int:
    with Session(world.db) as session:
        return session.exec(
            select(func.count()).select_from(SyncJob).where(SyncJob.calendar_id == cal.id)
        ).one()


def listed(world: ServerWorld) -> set[str]:
    """The ids of the channels the emulator would still push to."""
    answer = world.admin.get("/emulator/channels")
    assert answer.status_code == 200, answer.text
    return {c["id"] for c in answer.json()}


def stray_channel(world: ServerWorld, cal: Cal, unique: str) -> dict[str, Any]:
    """A channel calsync never made (left over from an old install, say) on a calendar it
    knows, pointing at an address that cannot be reached: Google keeps trying it."""
    channel: dict[str, Any] = (
        world.service(cal.email)
        .events()
        .watch(
            calendarId=cal.provider_id,
            body={
                "id": f"stray-{unique}",
                "type": "web_hook",
                "address": "http://127.0.0.1:9/hooks",
                "token": "whatever",
            },
        )
        .execute()
    )
    return channel


def notify_stray(world: ServerWorld, stray: dict[str, Any]) -> httpx.Response:
    """Google's notification number 3 of the stray channel."""
    return notify(
        world,
        {
            "X-Goog-Channel-ID": stray["id"],
            "X-Goog-Channel-Token": "whatever",
            "X-Goog-Resource-ID": stray["resourceId"],
            "X-Goog-Resource-State": "exists",
            "X-Goog-Message-Number": "3",
            "X-Goog-Resource-URI": stray["resourceUri"],
        },
    )


@pytest.fixture
def sqlite_world(emulator: RunningEmulator, tmp_path: Path) -> Iterator[ServerWorld]:
    """Scenarios that test the webhook's own logic, not the database: SQLite only."""
    built = ServerWorld(
        emulator,
        f"sqlite:///{tmp_path / 'calsync.db'}",
        tmp_path / "home",
        poll_interval_seconds=3600.0,
    )
    yield built
    built.close()


def pushing(world: ServerWorld, unique: str) -> tuple[httpx.Client, Cal, Cal, PushSubscription]:
    """A started server with two synced calendars, initial syncs done; the source's channel."""
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)  # sync on before the start: the first tick makes channels
    world.start()
    api = world.api()
    world.wait_for_channels(work, home)
    wait_until(lambda: world.settled(api) and world.logs(api, home), what="initial syncs")
    channel = world.channel(work)
    assert channel is not None
    assert channel.last_sequence is not None
    return api, work, home, channel


def test_a_notification_syncs_once_and_forgeries_duplicates_and_sync_messages_do_nothing(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    api, work, home, channel = pushing(world, unique)
    with closing(api):
        logs_before = len(world.logs(api, work))
        jobs_before = jobs(world, work)
        number = channel.last_sequence or 0
        world.reset_stats()

        # A wrong token, or the right token for another resource: refused and recorded.
        forged = headers_of(channel, number + 10) | {"X-Goog-Channel-Token": "guessed"}
        answer = notify(world, forged)
        assert answer.status_code == 403, answer.text
        assert "error" in answer.json()
        no_token = {k: v for k, v in forged.items() if k != "X-Goog-Channel-Token"}
        assert notify(world, no_token).status_code == 403
        other = headers_of(channel, number + 11) | {"X-Goog-Resource-ID": "someone-else"}
        assert notify(world, other).status_code == 403
        assert outcomes(world, channel.key)[-3:] == [
            (number + 10, "forged"),
            (number + 10, "forged"),
            (number + 11, "forged"),
        ]
        # A forgery does not use up the message number the real one will carry.
        sync_message = notify(world, headers_of(channel, number + 10, "sync"))
        assert sync_message.status_code == 200, sync_message.text
        assert sync_message.json() == {"outcome": "sync_message"}
        again = notify(world, headers_of(channel, number + 10))
        assert again.json() == {"outcome": "duplicate"}
        older = notify(world, headers_of(channel, number + 9))
        assert older.json() == {"outcome": "duplicate"}
        assert jobs(world, work) == jobs_before
        assert len(world.logs(api, work)) == logs_before
        assert world.stats()["calls"].get("events.list", 0) == 0, world.stats()

        # A real one: one webhook sync of that calendar, and a repeat of it changes nothing.
        world.insert(work, **timed("Review", 11, 12))
        real = headers_of(channel, number + 1_000_000)
        answer = notify(world, real)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] in ("enqueued", "coalesced")
        blocks = wait_until(lambda: world.blocks(home), what="the review's block in home")
        assert [b["summary"] for b in blocks] == ["Busy"]
        wait_until(lambda: world.settled(api), what="the queue to drain")
        logs = world.logs(api, work)
        assert logs[0]["kind"] == "webhook", logs
        settled_logs = len(logs)
        assert notify(world, real).json() == {"outcome": "duplicate"}
        wait_until(lambda: world.settled(api), what="the queue to drain")
        assert len(world.logs(api, work)) == settled_logs


def test_malformed_headers_are_refused_naming_the_header(
    sqlite_world: ServerWorld, unique: str
) -> None:
    world = sqlite_world
    api, work, _home, channel = pushing(world, unique)
    api.close()
    good = headers_of(channel, 10**9)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("X-Goog-Channel-ID", {"X-Goog-Channel-ID": None}),
        ("X-Goog-Channel-ID", {"X-Goog-Channel-ID": ""}),
        ("X-Goog-Channel-ID", {"X-Goog-Channel-ID": "c" * 65}),
        ("X-Goog-Resource-State", {"X-Goog-Resource-State": None}),
        ("X-Goog-Resource-State", {"X-Goog-Resource-State": "deleted"}),
        ("X-Goog-Resource-State", {"X-Goog-Resource-State": "EXISTS"}),
        ("X-Goog-Resource-State", {"X-Goog-Resource-State": "x" * 5000}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": None}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": "seven"}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": "-1"}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": "1.5"}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": "+12"}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": b"\xb2"}),  # "²": isdigit()
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": str(2**63)}),
        ("X-Goog-Message-Number", {"X-Goog-Message-Number": "9" * 400}),
        ("X-Goog-Resource-ID", {"X-Goog-Resource-ID": None}),
        ("X-Goog-Resource-ID", {"X-Goog-Resource-ID": "r" * 257}),
        ("X-Goog-Channel-Token", {"X-Goog-Channel-Token": "t" * 257}),
        ("X-Goog-Resource-URI", {"X-Goog-Resource-URI": "https://x/" + "u" * 3000}),
    ]
    for name, change in cases:
        headers = {k: v for k, v in (good | change).items() if v is not None}
        answer = notify(world, headers)
        assert answer.status_code == 400, (change, answer.text)
        assert name.lower() in answer.json()["error"].lower(), (change, answer.text)

    for body in (b"x" * 5000, b"{" * (2 * 1024 * 1024)):
        answer = notify(world, good, content=body)
        assert answer.status_code == 413, answer.text
        assert "error" in answer.json()
    # A body without a declared length (chunked) is measured as it arrives.
    chunked = httpx.post(
        world.url + "webhooks/google",
        headers=good,
        content=iter([b"y" * 800, b"y" * 800]),
        timeout=30,
    )
    assert chunked.status_code == 413, chunked.text

    # None of it was recorded as a notification, queued a sync or used up a message number.
    assert outcomes(world, channel.key) == [(1, "sync_message")]
    assert notify(world, good).json()["outcome"] in ("enqueued", "coalesced")
    assert world.channel(work) is not None


def test_notifications_for_unknown_or_stopped_channels_stop_them_at_the_provider(
    sqlite_world: ServerWorld, unique: str
) -> None:
    world = sqlite_world
    api, work, home, channel = pushing(world, unique)
    with closing(api):
        stray = stray_channel(world, work, unique)
        assert stray["id"] in listed(world)
        answer = notify_stray(world, stray)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"outcome": "unknown_channel"}
        wait_until(lambda: stray["id"] not in listed(world), what="the stray channel stopped")
        assert outcomes(world, stray["id"]) == [(3, "unknown_channel")]

        # A channel calsync stopped (sync turned off) whose stop did not reach Google.
        home_channel = world.channel(home)
        assert home_channel is not None
        world.fault("channels.stop", 503, times=20)
        jobs_before = jobs(world, home)
        answer = api.patch(f"/api/v1/calendars/{home.id}", json={"sync_enabled": False})
        assert answer.status_code == 200, answer.text
        assert home_channel.key in listed(world)
        world.admin.delete("/emulator/faults").raise_for_status()
        with Session(world.db) as session:
            row = session.exec(
                select(PushSubscription).where(PushSubscription.key == home_channel.key)
            ).one()
            assert row.state == "stopped"
        wait_until(lambda: world.settled(api), what="the queue to drain")
        jobs_before = jobs(world, home)
        answer = notify(world, headers_of(home_channel, 10**6))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"outcome": "unknown_channel"}
        wait_until(
            lambda: home_channel.key not in listed(world),
            what="the stopped channel stopped at the provider too",
        )
        assert jobs(world, home) == jobs_before
        # The other calendar's channel is untouched.
        assert channel.key in listed(world)
        assert world.channel(work) is not None


def test_a_notification_for_a_channel_of_a_calendar_calsync_does_not_know_is_acknowledged(
    sqlite_world: ServerWorld, unique: str
) -> None:
    world = sqlite_world
    world.start()
    answer = notify(
        world,
        {
            "X-Goog-Channel-ID": f"nobody-{unique}",
            "X-Goog-Resource-ID": "r",
            "X-Goog-Resource-State": "exists",
            "X-Goog-Message-Number": "1",
            "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/"
            f"nobody-{unique}%40example.com/events?alt=json",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "unknown_channel"}
    assert outcomes(world, f"nobody-{unique}") == [(1, "unknown_channel")]


def test_an_unknown_channel_is_answered_while_its_stop_at_the_provider_is_unanswered(
    database_url: str, tmp_path: Path, unique: str
) -> None:
    """The stop of a channel calsync does not want runs after the answer (a provider that
    hears nothing in time retries the notification): Google's answer to the stop is held
    until the notification has been answered."""
    held = HeldAnswers()
    with run_emulator(EmulatorConfig(sleep=held.wait)) as emulator:
        world = ServerWorld(emulator, database_url, tmp_path / "home", poll_interval_seconds=3600.0)
        try:
            api, work, _home, _channel = pushing(world, unique)
            api.close()
            stray = stray_channel(world, work, unique)
            # Google's answer to the next channels.stop waits at the gate.
            world.admin.post(
                "/emulator/faults",
                json={"method": "channels.stop", "status": 200, "times": 1, "delay_ms": 1},
            ).raise_for_status()
            world.reset_stats()
            answer = notify_stray(world, stray)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"outcome": "unknown_channel"}
            # The stop was made, after the answer; Google's answer to it is still held, and
            # calsync is still waiting for it (it has not given up on it and tried again).
            wait_until(lambda: held.holding == 1, what="the stop's answer held at the gate")
            assert world.stats()["calls"].get("channels.stop") == 1, world.stats()
            assert stray["id"] not in listed(world)
            held.release()
            wait_until(lambda: held.let_go == 1, what="the stop's answer let go")
            assert world.stats()["calls"].get("channels.stop") == 1, world.stats()
            assert outcomes(world, stray["id"]) == [(3, "unknown_channel")]
        finally:
            held.release()
            world.close()
