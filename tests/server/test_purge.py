"""`calsync purge` and POST /api/v1/purge beside a running server, on SQLite and PostgreSQL: a
user with a Google and a CalDAV (Radicale) account whose block rows were lost gets every block
found by calsync's mark shown, confirmed and deleted; the person's own events stay; the dry run
deletes nothing; another user's calendar is not theirs to purge."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from click.testing import CliRunner, Result

from calsync_server.cli import cli
from calsync_server.db.models import BusyBlock
from tests.server.conftest import ServerWorld
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer
from tests.support.drivers.connect import blocks, connect, own_events
from tests.support.drivers.google import GoogleDriver
from tests.support.waiting import wait_until
from tests.support.world import Cal, at


@pytest.fixture
def world(server_world: ServerWorld) -> ServerWorld:
    return server_world


def instant(hours: float, days: int = 1) -> datetime:
    return datetime.fromisoformat(at(hours, days).replace("Z", "+00:00"))


def purge(world: ServerWorld, *args: str, input: str | None = None) -> Result:
    settings = world.server_settings
    flags = ["--home", str(settings.home), "--database-url", settings.database_url_resolved]
    flags += ["--google-api-url", settings.google_api_url]
    return CliRunner().invoke(cli, [*flags, "purge", *args], input=input)


def synced(
    world: ServerWorld, api: httpx.Client, google: GoogleDriver, caldav: CalDAVDriver
) -> tuple[Cal, Cal]:
    (work,) = connect(world, google, "Work")
    (home,) = connect(world, caldav, "Home")
    google.add(work.provider_id, PersonEvent("Board meeting", instant(9), instant(10)))
    caldav.add(home.provider_id, PersonEvent("Dentist", instant(14), instant(15)))
    # The person's own event that only looks like a block: no mark, so it is theirs.
    caldav.add(home.provider_id, PersonEvent("Busy", instant(16), instant(17)))
    world.enable(api, work, home)
    wait_until(
        lambda: len(blocks(google, work)) == 2 and len(blocks(caldav, home)) == 1,
        timeout=60,
        what="the blocks of the first syncs",
    )
    wait_until(lambda: world.settled(api), what="the first syncs to settle")
    return work, home


def test_purge_shows_asks_deletes_and_reports_with_the_block_rows_lost(
    world: ServerWorld, radicale: CalDAVServer, unique: str
) -> None:
    google = GoogleDriver(world.emulator, unique)
    caldav = CalDAVDriver(radicale)
    world.start(push=False)
    try:
        with world.api() as api:
            work, home = synced(world, api, google, caldav)
        mine = (own_events(google, work), own_events(caldav, home))
        world.execute(BusyBlock.__table__.delete())  # type: ignore[attr-defined]

        # The server has two users (the default one and ada): whose blocks must be said.
        refused = purge(world, "--yes")
        assert refused.exit_code == 2, refused.output
        assert "--user" in refused.output
        # Said no: nothing goes.
        kept = purge(world, "--user", "ada", input="n\nn\n")
        assert kept.exit_code == 1, kept.output
        assert f"Work (calendar {work.id}, {work.email}, google): 2 blocks" in kept.output
        assert f"Home (calendar {home.id}, {home.email}, caldav): 1 block" in kept.output
        assert "Busy - " not in kept.output
        assert len(blocks(google, work)) == 2

        done = purge(world, "--user", "ada", input="n\ny\n")
        assert done.exit_code == 0, (done.output, done.exception)
        assert "Delete 3 blocks from 2 calendars?" in done.output
        assert f"Work (calendar {work.id}, {work.email}, google): 2 deleted" in done.output
        assert f"Home (calendar {home.id}, {home.email}, caldav): 1 deleted" in done.output
        assert "the next sync writes their blocks again" in done.output
        assert blocks(google, work) == []
        assert blocks(caldav, home) == []
        assert (own_events(google, work), own_events(caldav, home)) == mine
        assert [e for e in own_events(caldav, home) if e[0] == "Busy"]

        again = purge(world, "--user", "ada", "--calendar", "Work", "--yes")
        assert again.exit_code == 0, again.output
        assert "Nothing to delete." in again.output
        unknown = purge(world, "--user", "ada", "--calendar", "Nowhere", "--yes")
        assert unknown.exit_code == 2
        assert "no calendar 'Nowhere'" in unknown.output
    finally:
        google.close()


def test_the_api_lists_first_then_deletes_only_the_users_own(
    world: ServerWorld, radicale: CalDAVServer, unique: str
) -> None:
    google = GoogleDriver(world.emulator, unique)
    caldav = CalDAVDriver(radicale)
    bobs = GoogleDriver(world.emulator, f"{unique}b")
    world.start(push=False)
    try:
        with world.api() as api, world.api("bob") as bob:
            work, home = synced(world, api, google, caldav)
            (bob_a, bob_b) = connect(world, bobs, "A", "B", user="bob")
            bobs.add(bob_a.provider_id, PersonEvent("Gym", instant(7), instant(8)))
            world.enable(bob, bob_a, bob_b)
            wait_until(lambda: len(blocks(bobs, bob_b)) == 1, what="bob's block")

            listed = api.post("/api/v1/purge")
            assert listed.status_code == 200, listed.text
            report = listed.json()
            assert report["dry_run"] is True
            assert report["found"] == 3
            by_id = {c["calendar_id"]: c for c in report["calendars"]}
            assert by_id[work.id]["found"] == 2
            assert [s["title"] for s in by_id[home.id]["sample"]] == ["Busy"]
            assert by_id[home.id]["receives_blocks"] is True
            assert len(blocks(google, work)) == 2  # a dry run deletes nothing

            # Bob's calendar is not Ada's to purge; a wrong body is refused.
            assert api.post("/api/v1/purge", json={"calendar_id": bob_b.id}).status_code == 404
            assert api.post("/api/v1/purge", json={"dry_run": "no"}).status_code == 400

            done = api.post(
                "/api/v1/purge", json={"calendar_id": work.id, "dry_run": False, "stop_sync": True}
            )
            assert done.status_code == 200, done.text
            outcome = done.json()
            assert (outcome["deleted"], outcome["left"]) == (2, 0)
            assert outcome["calendars"][0]["stopped"] == "source"
            assert blocks(google, work) == []
            assert len(blocks(caldav, home)) == 1  # another calendar: not in the scope
            assert len(blocks(bobs, bob_b)) == 1
            shown = {c["id"]: c for c in api.get("/api/v1/calendars").json()}
            assert shown[work.id]["role"] == "source"
            # Work no longer receives blocks: a full sync writes none there again.
            api.post("/api/v1/sync", json={"full": True})
            wait_until(lambda: world.settled(api), what="the full sync")
            assert blocks(google, work) == []
            assert len(blocks(caldav, home)) == 1
    finally:
        google.close()
        bobs.close()
