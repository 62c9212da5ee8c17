"""A user with a Google calendar (the emulator) and two Microsoft 365 calendars (the Graph
emulator, signed in through MSAL over TLS): the engine keeps every one blocked by the others
through the registry's Microsoft provider, whose block ids Graph assigns."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlmodel import Session, select

from calsync_server.db.models import Account, BusyBlock, Event, SyncLog
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.providers.credentials import MicrosoftTokenCache
from calsync_server.providers.microsoft import MARK_ID
from calsync_server.sync.engine import SyncEngine
from shared.domain import SyncStatus
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.connect import blocks, connect
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.world import FAST_RETRY, Cal, World, at, timed

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphEndpoints]:
    with run_graph_emulator(GraphEmulatorConfig(push_delay_s=0.01)) as running:
        yield GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


@pytest.fixture
def mixed(world: World, graph: GraphEndpoints) -> Iterator[tuple[World, MicrosoftDriver]]:
    """The world's engine pointed at the Graph emulator as the settings would point it."""
    world.settings = msgspec.structs.replace(
        world.settings,
        microsoft_graph_url=f"{graph.url}v1.0",
        microsoft_login_url=graph.tls_url,
        microsoft_ca_file=graph.ca_path,
    )
    world.engine = SyncEngine(world.db, world.settings, vault=world.vault, retry=FAST_RETRY)
    driver = MicrosoftDriver(graph)
    try:
        yield world, driver
    finally:
        driver.admin.delete("/emulator/faults")
        driver.close()


def instant(hours: float) -> datetime:
    return datetime.fromisoformat(at(hours).replace("Z", "+00:00"))


def spans(driver: MicrosoftDriver, cal: Cal) -> list[tuple[datetime, datetime]]:
    return [(s, e) for _t, s, e in blocks(driver, cal)]  # type: ignore[misc]


def google_blocks(world: World, cal: Cal) -> list[str]:
    return sorted(b["start"]["dateTime"] for b in world.blocks(cal))


def stored_ids(world: World, cal: Cal) -> set[str]:
    with Session(world.db) as session:
        return set(
            session.exec(
                select(BusyBlock.provider_event_id).where(BusyBlock.target_calendar_id == cal.id)
            )
        )


def graph_calls(driver: MicrosoftDriver) -> int:
    stats: dict[str, Any] = driver.admin.get("/emulator/stats").json()
    return int(stats["requests"])


def test_google_and_two_microsoft_calendars_block_each_other(
    mixed: tuple[World, MicrosoftDriver], unique: str
) -> None:
    world, ms = mixed
    google = world.account(f"home-{unique}@example.com")["primary"]
    work, team = connect(world, ms, "Work", "Team")
    world.configure(google, work, team)
    world.insert(google, **timed("Board meeting", 9, 10))
    standup = ms.add(work.provider_id, PersonEvent("Standup", instant(14), instant(15)))

    # Initial sync: blocks everywhere, each Microsoft block's id stored from Graph's answer.
    for result in world.sync_all(google, work, team):
        assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert google_blocks(world, google) == [at(14)]
    assert spans(ms, work) == [(instant(9), instant(10))]
    assert spans(ms, team) == [(instant(9), instant(10)), (instant(14), instant(15))]
    for cal in (work, team):
        assert stored_ids(world, cal) == set(ms.marks(cal.provider_id))
        for event in ms.events(cal.provider_id):
            if event["mark"] is not None:
                assert event["title"] == "Busy"
                assert event["private"]
                assert not event["reminder"]
                assert event["attendees"] == []
    # No block was taken for a person's event (loop prevention by the stored ids).
    with Session(world.db) as session:
        titles = {e.summary for e in session.exec(select(Event))}
    assert "Busy" not in titles

    # An echo of calsync's own write costs no further call: the sync of a calendar calsync
    # just wrote into makes the delta round only, as a quiet one does.
    ms.move(work.provider_id, standup, instant(16), instant(17))
    assert world.sync(work).log.status == SyncStatus.SUCCESS
    assert spans(ms, team) == [(instant(9), instant(10)), (instant(16), instant(17))]
    assert google_blocks(world, google) == [at(16)]
    before = graph_calls(ms)
    echo = world.sync(team)
    echo_calls = graph_calls(ms) - before
    before = graph_calls(ms)
    quiet = world.sync(team)
    quiet_calls = graph_calls(ms) - before
    assert echo.log.status == quiet.log.status == SyncStatus.SUCCESS
    assert echo_calls == quiet_calls, (echo_calls, quiet_calls)
    assert echo.log.blocks_created == echo.log.blocks_updated == 0
    assert not any(b.user_modified for b in world.rows())

    # A delete in Microsoft removes its blocks in Google and in the other calendar.
    ms.delete(work.provider_id, standup)
    world.sync_all(work, team, google)
    assert google_blocks(world, google) == []
    assert spans(ms, team) == [(instant(9), instant(10))]

    # An expired deltaLink: a full sync of that calendar, and no block twice.
    ms.add(team.provider_id, PersonEvent("Review", instant(11), instant(12)))
    ms.expire_cursor(team.provider_id)
    result = world.sync(team)
    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert "token expired: full sync" in result.log.notes
    world.sync_all(team, work, google)
    assert google_blocks(world, google) == [at(11)]
    assert spans(ms, work) == [(instant(9), instant(10)), (instant(11), instant(12))]
    assert spans(ms, team) == [(instant(9), instant(10))]


def killed_sync(world: World, cal: Cal) -> None:
    """Sync the calendar in a process of its own that is killed (SIGKILL) as soon as a
    Microsoft create is answered, before calsync records it."""
    args = [sys.executable, "-m", "tests.engine.killed_after_create"]
    settings = msgspec.to_builtins(world.settings, enc_hook=str)
    args += [msgspec.json.encode(settings).decode(), str(cal.id)]
    done = subprocess.run(args, cwd=REPO, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr.decode()[-3000:])


def sync_logs(world: World, cal: Cal) -> int:
    with Session(world.db) as session:
        return len(session.exec(select(SyncLog).where(SyncLog.calendar_id == cal.id)).all())


# The killed sync runs in a process of its own, on the real clock: the test's must be real too.
@pytest.mark.real_clock
def test_a_crash_between_create_and_commit_leaves_exactly_one_block(
    mixed: tuple[World, MicrosoftDriver], unique: str
) -> None:
    world, ms = mixed
    google = world.account(f"crash-{unique}@example.com")["primary"]
    (team,) = connect(world, ms, "Team")
    world.configure(google, team)
    world.sync_all(google, team)

    # Incremental: the process dies once Graph has made the block and before calsync
    # recorded anything of it (no id stored, no sync logged). The rerun creates again with
    # the same transactionId; Graph answers the block the killed sync made, and calsync
    # stores its id.
    world.insert(google, **timed("Dentist", 9, 10))
    logged = sync_logs(world, google)
    killed_sync(world, google)
    assert spans(ms, team) == [(instant(9), instant(10))]
    assert stored_ids(world, team) == set()
    assert sync_logs(world, google) == logged
    # The lost block shows in Team's feed unmarked: it is known as calsync's, not a source.
    result = world.sync(team)
    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    with Session(world.db) as session:
        assert session.exec(select(Event).where(Event.calendar_id == team.id)).all() == []
    world.sync_all(google, team)
    assert spans(ms, team) == [(instant(9), instant(10))]
    assert stored_ids(world, team) == set(ms.marks(team.provider_id))
    assert google_blocks(world, google) == []

    # A full reconcile after a crash adopts the block by its mark, and deletes a second block
    # of the same source (what a repeated create after Graph's dedupe window would leave).
    world.insert(google, **timed("Gym", 18, 19))
    killed_sync(world, google)
    marks = ms.marks(team.provider_id)
    lost = next(k for k, v in marks.items() if k not in stored_ids(world, team))
    copy = ms._call(
        "POST",
        ms._events(team.provider_id),
        json={
            "subject": "Busy",
            "start": {"dateTime": at(18).removesuffix("Z"), "timeZone": "UTC"},
            "end": {"dateTime": at(19).removesuffix("Z"), "timeZone": "UTC"},
            "singleValueExtendedProperties": [{"id": MARK_ID, "value": marks[lost]}],
        },
    ).json()["id"]
    assert len(ms.marks(team.provider_id)) == 3
    result = world.sync(google, full=True)
    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    world.sync_all(google, team)
    assert spans(ms, team) == [(instant(9), instant(10)), (instant(18), instant(19))]
    assert stored_ids(world, team) == set(ms.marks(team.provider_id))
    assert len(stored_ids(world, team) & {lost, copy}) == 1


def test_a_rotated_token_cache_is_sealed_back_into_the_account(
    mixed: tuple[World, MicrosoftDriver], unique: str
) -> None:
    world, ms = mixed
    (team,) = connect(world, ms, "Team")
    world.configure(team)
    with Session(world.db) as session:
        account = session.exec(select(Account).where(Account.email == ms.email)).one()
        assert account.credentials_encrypted is not None
        first = world.vault.open(account.credentials_encrypted)
    assert isinstance(first, MicrosoftTokenCache)
    # The access token runs out: MSAL refreshes, and the rotated cache is what is kept.
    ms.admin.post("/emulator/clock/advance", json={"seconds": 7200}).raise_for_status()
    result = world.sync(team)
    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    with Session(world.db) as session:
        account = session.exec(select(Account).where(Account.email == ms.email)).one()
        assert account.credentials_encrypted is not None
        kept = world.vault.open(account.credentials_encrypted)
    assert isinstance(kept, MicrosoftTokenCache)
    assert kept.cache != first.cache
    assert kept.home_account_id == first.home_account_id


def test_a_sync_asks_the_login_authority_for_its_endpoints_once_a_day_not_per_sync(
    mixed: tuple[World, MicrosoftDriver],
) -> None:
    """MSAL is built afresh for each sync: the authority's discovery answer is shared, so the
    syncs after the first reach Graph (and the token endpoint when a token runs out) only."""
    world, ms = mixed
    (team,) = connect(world, ms, "Team")
    world.configure(team)
    world.sync(team)
    ms.admin.post("/emulator/stats/reset").raise_for_status()
    ms.add(team.provider_id, PersonEvent("Standup", instant(9), instant(10)))

    for _ in range(3):
        result = world.sync(team)
        assert result.log.status == SyncStatus.SUCCESS, result.log.error

    calls = ms.admin.get("/emulator/stats").json()["calls"]
    assert "openid-configuration" not in calls, calls
