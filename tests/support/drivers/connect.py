"""Connect a driver's account to calsync as a sign-in does: the engine and server tiers' tests
make calendars through any driver and get them back as calsync knows them."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from datetime import UTC, date, datetime

from sqlmodel import Session

from calsync_server.accounts.service import connect_account, import_calendars
from shared.domain import Provider
from tests.support.drivers.base import Driver
from tests.support.world import Cal, World


def connect(world: World, driver: Driver, *names: str, user: str = "ada") -> list[Cal]:
    """New calendars made through the driver, their accounts connected to calsync for the user
    (import with sync off, as the seeds require); the calendars by the names given, in order."""
    made = [driver.new_calendar(name) for name in names]
    by_account: dict[str, list[str]] = {}
    for calendar_id in made:
        by_account.setdefault(driver.login(calendar_id).email, []).append(calendar_id)
    cals: dict[str, Cal] = {}
    with Session(world.db) as session:
        for email, calendar_ids in by_account.items():
            login = driver.login(calendar_ids[0])
            account = connect_account(
                session,
                world.vault,
                user_id=world.user(user),
                email=email,
                credentials=login.credentials,
                now=datetime.now(UTC),
                provider=Provider(login.provider),
            )
            factory = world.engine.provider_factory
            with closing(factory(account.provider, account.id, login.credentials)) as provider:
                imported = {
                    c.provider_calendar_id: c for c in import_calendars(session, account, provider)
                }
            session.commit()
            for calendar_id in calendar_ids:
                assert imported[calendar_id].id is not None
                cals[calendar_id] = Cal(imported[calendar_id].id or 0, calendar_id, email)
    return [cals[calendar_id] for calendar_id in made]


Span = tuple[str, datetime | date, datetime | date]


def blocks(driver: Driver, cal: Cal) -> list[Span]:
    """calsync's blocks in the calendar as the provider holds them (by the mark, never the
    title): (title, start, end), sorted; times in UTC so providers compare."""
    return _sorted(e for e in driver.events(cal.provider_id) if e["mark"] is not None)


def own_events(driver: Driver, cal: Cal) -> list[Span]:
    """The person's own events in the calendar (no calsync mark), sorted."""
    return _sorted(e for e in driver.events(cal.provider_id) if e["mark"] is None)


def _sorted(events: Iterable[dict[str, object]]) -> list[Span]:
    spans = [
        (str(e["title"]), _utc(e["start"]), _utc(e["end"]))  # type: ignore[arg-type]
        for e in events
    ]
    # By start as text: dates and datetimes do not compare, all-day ones sort by their day.
    return sorted(spans, key=lambda s: (str(s[1]), str(s[2]), s[0]))


def _utc(value: datetime | date) -> datetime | date:
    return value.astimezone(UTC) if isinstance(value, datetime) else value
