"""Engine behaviours against the emulator over HTTP: each test checks the calendars afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa

from calsync_server.db.models import Account, BusyBlock, Calendar
from shared.domain import AccountState, SyncStatus
from tests.support.world import Cal, World, at, timed


def _two_accounts(world: World, unique: str) -> tuple[Cal, Cal]:
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.sync_all(work, home)
    return work, home


def test_new_events_create_blocks_in_every_other_calendar_both_ways(
    world: World, unique: str
) -> None:
    cals = world.account(f"work-{unique}@example.com", "Team")
    home = world.account(f"home-{unique}@example.com")["primary"]
    work, team = cals["primary"], cals["Team"]
    world.configure(work, team, home)
    world.insert(work, **timed("Board meeting", 9, 10))
    world.insert(home, **timed("Dentist", 14, 15))

    world.sync_all(work, team, home)

    assert [(b["summary"], b["start"]["dateTime"]) for b in world.blocks(home)] == [("Busy", at(9))]
    assert [b["summary"] for b in world.blocks(team)] == ["Busy", "Busy"]
    assert [b["start"]["dateTime"] for b in world.blocks(work)] == [at(14)]
    for block in world.blocks(team):
        assert block["visibility"] == "private"
        assert block["transparency"] == "opaque"
        assert "description" not in block
        assert "attendees" not in block or block["attendees"] == []
    assert len(world.rows()) == 4


def test_an_updated_title_or_time_updates_the_block(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    world.configure(work, busy_title="title")
    event = world.insert(work, **timed("Planning", 9, 10))
    world.sync_all(work, home)
    assert [b["summary"] for b in world.blocks(home)] == ["Busy - Planning"]

    world.service(work.email).events().patch(
        calendarId=work.provider_id,
        eventId=event["id"],
        body={
            "summary": "Planning v2",
            "start": {"dateTime": at(11)},
            "end": {"dateTime": at(12)},
        },
    ).execute()
    result = world.sync(work)

    (block,) = world.blocks(home)
    assert block["summary"] == "Busy - Planning v2"
    assert block["start"]["dateTime"] == at(11)
    assert result.log.blocks_updated == 1


def test_a_deleted_event_removes_its_block(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    event = world.insert(work, **timed("Standup", 9, 10))
    world.sync_all(work, home)
    assert len(world.blocks(home)) == 1

    world.service(work.email).events().delete(
        calendarId=work.provider_id, eventId=event["id"]
    ).execute()
    result = world.sync(work)

    assert world.blocks(home) == []
    assert world.rows() == []
    assert result.log.blocks_deleted == 1


def test_declined_free_working_location_and_birthday_make_no_block(
    world: World, unique: str
) -> None:
    work, home = _two_accounts(world, unique)
    world.insert(
        work,
        **timed(
            "Declined",
            9,
            10,
            attendees=[{"email": work.email, "self": True, "responseStatus": "declined"}],
        ),
    )
    world.insert(work, **timed("Free", 10, 11, transparency="transparent"))
    world.insert(
        work,
        **timed(
            "Office",
            8,
            17,
            eventType="workingLocation",
            transparency="transparent",
            visibility="public",
            workingLocationProperties={"type": "officeLocation"},
        ),
    )
    world.insert(
        work,
        **timed(
            "Tentative",
            12,
            13,
            attendees=[{"email": work.email, "self": True, "responseStatus": "tentative"}],
        ),
    )
    world.insert(work, **timed("Out", 14, 18, eventType="outOfOffice"))
    world.sync_all(work, home)

    assert sorted(b["start"]["dateTime"] for b in world.blocks(home)) == [at(12), at(14)]


def test_private_and_titled_blocks(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    world.configure(home, busy_title="title")
    world.insert(work, **timed("Secret merger", 9, 10, description="x", location="Room 1"))
    world.insert(home, **timed("Yoga", 18, 19))
    world.sync_all(work, home)

    (private,) = world.blocks(home)
    assert private["summary"] == "Busy"
    assert "location" not in private
    assert "description" not in private
    (titled,) = world.blocks(work)
    assert titled["summary"] == "Busy - Yoga"


def test_disabled_calendars_are_untouched(world: World, unique: str) -> None:
    cals = world.account(f"work-{unique}@example.com", "Side")
    work, side = cals["primary"], cals["Side"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)  # Side stays off, as every calendar starts
    world.insert(side, **timed("Side gig", 9, 10))
    world.insert(work, **timed("Work", 11, 12))
    world.sync_all(work, home)

    assert world.blocks(side) == []
    assert [b["start"]["dateTime"] for b in world.blocks(home)] == [at(11)]


def test_rate_limited_write_is_retried_and_noted(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    world.insert(work, **timed("Review", 9, 10))
    world.fault("events.insert", 429, times=1, reason="rateLimitExceeded")

    result = world.sync(work)

    assert result.log.status == SyncStatus.SUCCESS
    assert result.log.retries >= 1
    assert "retried after 429" in result.log.notes
    assert len(world.blocks(home)) == 1


def test_server_errors_outlasting_the_retries_keep_the_job_for_later(
    world: World, unique: str
) -> None:
    work, home = _two_accounts(world, unique)
    world.insert(work, **timed("Review", 9, 10))
    world.fault("events.insert", 503, times=10)

    failed = world.sync(work)
    assert failed.log.status == SyncStatus.PARTIAL
    assert failed.report.retryable
    world.admin.delete("/emulator/faults")
    again = world.sync(work)  # the token was not stored: the change is read again

    assert again.log.status == SyncStatus.SUCCESS
    assert len(world.blocks(home)) == 1


def test_a_block_moved_by_hand_is_preserved_and_logged(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    event = world.insert(work, **timed("1:1", 9, 10))
    world.sync_all(work, home)
    (block,) = world.blocks(home)
    world.service(home.email).events().patch(
        calendarId=home.provider_id,
        eventId=block["id"],
        body={"start": {"dateTime": at(15)}, "end": {"dateTime": at(16)}},
    ).execute()

    noticed = world.sync(home)
    world.service(work.email).events().patch(
        calendarId=work.provider_id, eventId=event["id"], body={"summary": "1:1 (moved)"}
    ).execute()
    world.sync(work)

    assert "preserved 1 user modification" in noticed.log.notes
    (kept,) = world.blocks(home)
    assert kept["start"]["dateTime"] == at(15)
    assert [row.user_modified for row in world.rows()] == [True]


def test_a_block_deleted_by_hand_is_not_recreated_until_its_source_changes(
    world: World, unique: str
) -> None:
    work, home = _two_accounts(world, unique)
    event = world.insert(work, **timed("Lunch", 12, 13))
    world.sync_all(work, home)
    (block,) = world.blocks(home)
    world.service(home.email).events().delete(
        calendarId=home.provider_id, eventId=block["id"]
    ).execute()
    world.sync(home)
    world.sync(work, full=True)
    assert world.blocks(home) == []

    world.service(work.email).events().patch(
        calendarId=work.provider_id,
        eventId=event["id"],
        body={"start": {"dateTime": at(13)}, "end": {"dateTime": at(14)}},
    ).execute()
    world.sync(work)

    assert [b["start"]["dateTime"] for b in world.blocks(home)] == [at(13)]


def test_recurring_series_expanded_moved_cancelled_and_deleted(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    series = world.insert(
        work,
        summary="Daily",
        start={"dateTime": at(8), "timeZone": "UTC"},
        end={"dateTime": at(8.5), "timeZone": "UTC"},
        recurrence=["RRULE:FREQ=DAILY;COUNT=5"],
    )
    world.sync_all(work, home)
    assert len(world.blocks(home)) == 5

    service = world.service(work.email)
    instances = (
        service.events().instances(calendarId=work.provider_id, eventId=series["id"]).execute()
    )
    first, second = instances["items"][0], instances["items"][1]
    service.events().patch(
        calendarId=work.provider_id,
        eventId=first["id"],
        body={"start": {"dateTime": at(10)}, "end": {"dateTime": at(10.5)}},
    ).execute()
    service.events().delete(calendarId=work.provider_id, eventId=second["id"]).execute()
    world.sync(work)

    starts = sorted(b["start"]["dateTime"] for b in world.blocks(home))
    assert len(starts) == 4
    assert at(10) in starts
    assert at(8, days=2) not in starts

    service.events().delete(calendarId=work.provider_id, eventId=series["id"]).execute()
    world.sync(work)
    assert world.blocks(home) == []


def test_all_day_events_block_only_when_asked(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    world.insert(
        work,
        summary="Conference",
        start={"date": day.isoformat()},
        end={"date": (day + timedelta(days=2)).isoformat()},
    )
    world.sync_all(work, home)
    assert world.blocks(home) == []

    world.configure(work, include_all_day=True)
    world.sync(work, full=True)

    (block,) = world.blocks(home)
    assert block["start"] == {"date": day.isoformat()}
    assert block["end"] == {"date": (day + timedelta(days=2)).isoformat()}


def test_an_event_across_a_dst_change_keeps_its_zone_and_length(world: World, unique: str) -> None:
    # Next last Sunday of March or October in Berlin, whichever comes first, overnight.
    today = datetime.now(UTC).date()
    candidates = []
    for year in (today.year, today.year + 1):
        for month in (3, 10):
            last = datetime(year, month, 31).date()
            while last.weekday() != 6:
                last -= timedelta(days=1)
            if last > today:
                candidates.append(last)
    change = min(candidates)
    # The change may lie past the default 90 days: widen the horizon to reach it.
    world.engine.settings = msgspec.structs.replace(world.settings, horizon_days=400)
    work, home = _two_accounts(world, unique)
    start = f"{(change - timedelta(days=1)).isoformat()}T22:00:00"
    end = f"{change.isoformat()}T06:00:00"
    world.insert(
        work,
        summary="Night shift",
        start={"dateTime": start, "timeZone": "Europe/Berlin"},
        end={"dateTime": end, "timeZone": "Europe/Berlin"},
    )
    world.sync_all(work, home)

    (block,) = world.blocks(home)
    assert block["start"]["timeZone"] == "Europe/Berlin"
    assert block["end"]["timeZone"] == "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    begins, ends = (
        datetime.fromisoformat(block[edge]["dateTime"]).replace(tzinfo=berlin)
        for edge in ("start", "end")
    )
    # Eight wall-clock hours, seven or nine real ones: the block spans the change exactly.
    assert ends.astimezone(UTC) - begins.astimezone(UTC) in (timedelta(hours=7), timedelta(hours=9))


def test_an_expired_sync_token_runs_a_full_sync(world: World, unique: str) -> None:
    work, home = _two_accounts(world, unique)
    world.insert(work, **timed("Before", 9, 10))
    world.sync(work)
    world.admin.post(
        f"/emulator/calendars/{work.provider_id}/expire-sync-tokens"
    ).raise_for_status()
    world.insert(work, **timed("After", 11, 12))

    result = world.sync(work)

    assert "token expired: full sync" in result.log.notes
    assert sorted(b["start"]["dateTime"] for b in world.blocks(home)) == [at(9), at(11)]


def test_a_read_only_target_is_marked_and_skipped(world: World, unique: str) -> None:
    cals = world.account(f"work-{unique}@example.com", readers=("Holidays",))
    work, holidays = cals["primary"], cals["Holidays"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    # The list says reader: imported read-only, never a target.
    with world.db.connect() as connection:
        read_only = connection.execute(
            sa.select(Calendar.read_only).where(Calendar.id == holidays.id)  # type: ignore[arg-type]
        ).scalar()
    assert read_only is True
    # Force the provider to say no: a calendar the list called writable refuses writes.
    world.configure(work, home, holidays)
    world.execute(sa.update(Calendar).where(Calendar.id == holidays.id).values(read_only=False))  # type: ignore[arg-type]
    world.insert(work, **timed("Sync", 9, 10))

    result = world.sync(work)

    assert any("read-only" in note for note in result.log.notes)
    with world.db.connect() as connection:
        assert (
            connection.execute(
                sa.select(Calendar.read_only).where(Calendar.id == holidays.id)  # type: ignore[arg-type]
            ).scalar()
            is True
        )
    assert len(world.blocks(home)) == 1


def test_a_crash_between_provider_write_and_commit_creates_no_duplicate(
    world: World, unique: str
) -> None:
    work, home = _two_accounts(world, unique)
    world.insert(work, **timed("Retro", 9, 10))
    world.sync(work)
    # What a crash after the writes but before the commit leaves: blocks at the provider,
    # no rows for them, and the old sync token.
    world.execute(sa.delete(BusyBlock))
    world.execute(sa.update(Calendar).where(Calendar.id == work.id).values(sync_token=None))  # type: ignore[arg-type]

    world.sync(work)
    world.sync(work, full=True)

    assert len(world.blocks(home)) == 1
    assert len(world.rows()) == 1


def test_a_revoked_refresh_token_marks_the_account_and_keeps_its_blocks(
    world: World, unique: str
) -> None:
    work, home = _two_accounts(world, unique)
    world.insert(work, **timed("Kept", 9, 10))
    world.sync_all(work, home)
    # Revoking the refresh token revokes its access tokens too, as Google does.
    world.admin.post("/revoke", params={"token": world.tokens[work.email]["refresh_token"]})

    result = world.sync(work)

    assert result.log.status == SyncStatus.ERROR
    with world.db.connect() as connection:
        states = dict(connection.execute(sa.select(Account.email, Account.state)).all())  # type: ignore[call-overload]
    assert states[work.email] == AccountState.NEEDS_REAUTH
    assert states[home.email] == AccountState.ACTIVE
    assert len(world.blocks(home)) == 1
    assert world.sync(home).log.status == SyncStatus.SUCCESS
