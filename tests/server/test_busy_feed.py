"""The free/busy feed through the running server, on SQLite and PostgreSQL: a user with a Google
and a CalDAV (Radicale) calendar gets a secret URL whose iCalendar parses back with `icalendar`
into the merged times of the blocks calsync writes, with no title of theirs; a wrong, rotated
or removed URL answers 404; the same ETag gets 304, a change a new one."""

from __future__ import annotations

from datetime import date, datetime

import httpx
import icalendar
import pytest
from click.testing import CliRunner

from calsync_server.cli import cli
from tests.server.conftest import ServerWorld
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer
from tests.support.drivers.connect import blocks, connect
from tests.support.drivers.google import GoogleDriver
from tests.support.waiting import wait_until
from tests.support.world import at

Span = tuple[datetime, datetime]
PRIVATE_TITLES = ("Board meeting", "Standup", "Dentist", "Lunch with Sam", "Gym", "Gone")


@pytest.fixture
def world(server_world: ServerWorld) -> ServerWorld:
    return server_world


def instant(hours: float, days: int = 1) -> datetime:
    return datetime.fromisoformat(at(hours, days).replace("Z", "+00:00"))


def spans_of(body: bytes) -> list[Span]:
    """The feed parsed back: each VEVENT's span, checked to say "Busy" and nothing more."""
    parsed = icalendar.Calendar.from_ical(body)
    found: list[Span] = []
    for event in parsed.walk("VEVENT"):
        assert str(event["SUMMARY"]) == "Busy"
        assert {"DESCRIPTION", "LOCATION", "ATTENDEE", "ORGANIZER"}.isdisjoint(event), event
        found.append((event.decoded("DTSTART"), event.decoded("DTEND")))
    return sorted(found)


def merged_blocks(spans: list[tuple[str, datetime | date, datetime | date]]) -> list[Span]:
    merged: list[Span] = []
    for _, start, end in sorted(spans, key=lambda s: str(s[1])):
        assert isinstance(start, datetime)
        assert isinstance(end, datetime)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def read(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=30)


def synced_now(world: ServerWorld, api: httpx.Client) -> None:
    accepted = api.post("/api/v1/sync")
    assert accepted.status_code == 202, accepted.text
    wait_until(lambda: world.settled(api), timeout=60, what="the syncs to settle")


def test_the_feed_shows_the_merged_busy_times_of_the_blocks_and_nothing_else(
    world: ServerWorld, radicale: CalDAVServer, unique: str
) -> None:
    google = GoogleDriver(world.emulator, unique)
    caldav = CalDAVDriver(radicale)
    bobs = GoogleDriver(world.emulator, f"{unique}b")
    world.start(push=False)
    try:
        with world.api() as api, world.api("bob") as bob:
            work, family = connect(world, google, "Work", "Family")
            (home,) = connect(world, caldav, "Home")
            google.add(work.provider_id, PersonEvent("Board meeting", instant(9), instant(10)))
            google.add(work.provider_id, PersonEvent("Standup", instant(10), instant(10.5)))
            google.add(work.provider_id, PersonEvent("Gym", instant(12), instant(13), free=True))
            caldav.add(home.provider_id, PersonEvent("Dentist", instant(10.25), instant(11)))
            caldav.add(home.provider_id, PersonEvent("Lunch with Sam", instant(13), instant(14)))
            world.enable(api, work, home)
            world.enable(api, family, role="target")  # holds every block: the feed's check
            (bob_cal,) = connect(world, bobs, "Bob", user="bob")
            bobs.add(bob_cal.provider_id, PersonEvent("Bob's", instant(18), instant(19)))
            world.enable(bob, bob_cal)
            wait_until(lambda: world.settled(api), timeout=60, what="the first syncs")

            assert api.get("/api/v1/feed").json() == {
                "enabled": False,
                "created_at": None,
                "url": None,
            }
            made = api.post("/api/v1/feed/rotate")
            assert made.status_code == 201, made.text
            url = made.json()["url"]
            assert url.startswith(world.url.rstrip("/") + "/feeds/")
            assert api.get("/api/v1/feed").json()["enabled"] is True
            assert api.get("/api/v1/feed").json().get("url") is None  # shown only once

            answer = read(url)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith("text/calendar")
            assert answer.headers["cache-control"] == "private, max-age=300"
            etag = answer.headers["etag"]
            for title in PRIVATE_TITLES:
                assert title.encode() not in answer.content
            expected = [(instant(9), instant(11)), (instant(13), instant(14))]
            assert spans_of(answer.content) == expected
            # The same times as the blocks calsync wrote into the target, merged.
            assert merged_blocks(blocks(google, family)) == expected

            # Unchanged: 304 for the subscriber's copy, with no body.
            same = read(url, **{"If-None-Match": etag})
            assert same.status_code == 304
            assert same.content == b""
            assert same.headers["etag"] == etag

            # A change the next sync brings in gives a new ETag and the new times.
            caldav.add(home.provider_id, PersonEvent("Gone", instant(16), instant(17)))
            synced_now(world, api)
            changed = read(url, **{"If-None-Match": etag})
            assert changed.status_code == 200
            assert changed.headers["etag"] != etag
            assert spans_of(changed.content) == [*expected, (instant(16), instant(17))]

            # Bob's feed is his own.
            bobs_url = bob.post("/api/v1/feed/rotate").json()["url"]
            assert spans_of(read(bobs_url).content) == [(instant(18), instant(19))]

            # A wrong secret, an unknown key, a rotated and a removed URL: 404.
            key, secret = url.rsplit("/", 2)[-2:]
            wrong = secret[:-5] + ("A" if secret[-5] != "A" else "B") + ".ics"
            assert read(url.replace(secret, wrong)).status_code == 404
            assert read(url.replace(key, "0" * len(key))).status_code == 404
            assert read(url.removesuffix(".ics")).status_code == 404
            rotated = rotate_by_command(world, "ada")
            assert read(url).status_code == 404
            assert spans_of(read(rotated).content) == [*expected, (instant(16), instant(17))]
            assert api.delete("/api/v1/feed").json() == {
                "enabled": False,
                "created_at": None,
                "url": None,
            }
            assert read(rotated).status_code == 404
            assert read(bobs_url).status_code == 200
    finally:
        google.close()
        bobs.close()


def rotate_by_command(world: ServerWorld, user: str) -> str:
    """`calsync users feed USER --rotate`: the new URL it prints, on the server's address."""
    settings = world.server_settings
    flags = ["--home", str(settings.home), "--database-url", settings.database_url_resolved]
    result = CliRunner().invoke(cli, [*flags, "users", "feed", user, "--rotate"])
    assert result.exit_code == 0, (result.output, result.exception)
    path = result.output.split("<this server's address>", 1)[1].split()[0]
    shown = CliRunner().invoke(cli, [*flags, "users", "feed", user])
    assert "has a feed since" in shown.output, shown.output
    assert path not in shown.output
    return world.url.rstrip("/") + path


def test_the_feed_api_needs_the_token_and_an_unknown_url_is_not_found(world: ServerWorld) -> None:
    world.start(push=False)
    with httpx.Client(base_url=world.url, timeout=30) as anonymous:
        refused = anonymous.post("/api/v1/feed/rotate")
        assert refused.status_code == 401
    # No user has a feed: any URL is unknown.
    assert read(world.url.rstrip("/") + "/feeds/" + "a" * 24 + "/secret.ics").status_code == 404
