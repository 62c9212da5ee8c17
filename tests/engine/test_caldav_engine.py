"""A user with a Google calendar (the emulator) and two CalDAV calendars (a real Radicale): the
engine keeps every one of them blocked by the others, through the registry's CalDAV provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from sqlmodel import Session, select

from calsync_server.accounts.service import connect_account, import_calendars
from calsync_server.db.models import Account, BusyBlock, Calendar
from calsync_server.providers.credentials import CalDAVPassword
from calsync_server.sync.engine import SyncEngine
from shared.clock import FixedClock
from shared.domain import AccountState, Provider, SyncKind, SyncStatus
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer, caldav_server
from tests.support.world import FAST_RETRY, Cal, World, at, timed


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalDAVServer]:
    with caldav_server("radicale", tmp_path_factory.mktemp("radicale")) as server:
        yield server


def instant(hours: float) -> datetime:
    return datetime.fromisoformat(at(hours).replace("Z", "+00:00"))


def connect_caldav(world: World, driver: CalDAVDriver, *names: str) -> tuple[int, list[Cal]]:
    """New calendars in the person's CalDAV account, and the account connected to calsync as
    a sign-in does (import with sync off); the calendars by the names given, in order."""
    made = [driver.new_calendar(name) for name in names]
    server = driver.server
    login = CalDAVPassword(url=server.url, username=server.username, password=server.password)
    with Session(world.db) as session:
        account = connect_account(
            session,
            world.vault,
            user_id=world.user(),
            email=server.username,
            credentials=login,
            now=datetime.now(UTC),
            provider=Provider.CALDAV,
        )
        factory = world.engine.provider_factory
        with closing(factory(account.provider, account.id, login)) as provider:
            imported = {
                c.provider_calendar_id: c for c in import_calendars(session, account, provider)
            }
        session.commit()
        assert account.id is not None
        cals = [Cal(imported[url].id or 0, url, server.username) for url in made]
        return account.id, cals


def caldav_blocks(driver: CalDAVDriver, cal: Cal) -> list[tuple[datetime, datetime]]:
    return sorted(
        (e["start"], e["end"])  # type: ignore[misc]
        for e in driver.events(cal.provider_id)
        if e["mark"] is not None
    )


def google_blocks(world: World, cal: Cal) -> list[str]:
    return sorted(b["start"]["dateTime"] for b in world.blocks(cal))


def test_google_and_two_caldav_calendars_block_each_other(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    driver = CalDAVDriver(radicale)
    google = world.account(f"work-{unique}@example.com")["primary"]
    account_id, (personal, family) = connect_caldav(world, driver, "Personal", "Family")
    world.configure(google, personal, family)
    world.insert(google, **timed("Board meeting", 9, 10))
    dentist = driver.add(personal.provider_id, PersonEvent("Dentist", instant(14), instant(15)))

    # Initial sync: every calendar holds a block for each event of the other two.
    world.sync_all(google, personal, family)
    assert google_blocks(world, google) == [at(14)]
    assert caldav_blocks(driver, personal) == [(instant(9), instant(10))]
    assert caldav_blocks(driver, family) == [(instant(9), instant(10)), (instant(14), instant(15))]
    for event in driver.events(family.provider_id):
        assert event["title"] == "Busy"
        assert "CLASS:PRIVATE" in str(event["ics"])
        assert "Dentist" not in str(event["ics"])

    # An incremental change in CalDAV moves its blocks in Google and in the other calendar.
    driver.move(personal.provider_id, dentist, instant(16), instant(17))
    result = world.sync(personal)
    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert google_blocks(world, google) == [at(16)]
    assert caldav_blocks(driver, family) == [(instant(9), instant(10)), (instant(16), instant(17))]

    # A delete in CalDAV removes them; a change in Google reaches both CalDAV calendars.
    driver.delete(personal.provider_id, dentist)
    world.insert(google, **timed("Review", 11, 12))
    world.sync_all(personal, google, family)
    assert google_blocks(world, google) == []
    for cal in (personal, family):
        assert caldav_blocks(driver, cal) == [(instant(9), instant(10)), (instant(11), instant(12))]

    # Disconnecting the CalDAV account: the blocks calsync wrote into its calendars go, and
    # so do those its calendars sourced elsewhere.
    driver.add(family.provider_id, PersonEvent("Piano", instant(18), instant(19)))
    world.sync_all(family, google)
    assert google_blocks(world, google) == [at(18)]
    report = world.engine.release_account(account_id)
    assert report.error is None
    assert google_blocks(world, google) == []
    for cal in (personal, family):
        assert caldav_blocks(driver, cal) == []
    # The person's own events stay.
    assert [e["title"] for e in driver.events(family.provider_id)] == ["Piano"]


def test_the_blocks_the_engine_writes_are_stamped_by_its_clock(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    """The engine's clock reaches the providers it builds (the registry's factory): a CalDAV
    block's DTSTAMP is the engine's now, not the wall's (an hour apart here)."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    world.engine = SyncEngine(
        world.db, world.settings, clock=FixedClock(now), vault=world.vault, retry=FAST_RETRY
    )
    driver = CalDAVDriver(radicale)
    google = world.account(f"stamped-{unique}@example.com")["primary"]
    _, (personal,) = connect_caldav(world, driver, "Personal")
    world.configure(google, personal)
    world.insert(google, **timed("Board meeting", 9, 10))
    world.sync_all(google, personal)
    [block] = [e for e in driver.events(personal.provider_id) if e["mark"] is not None]
    assert f"DTSTAMP:{now:%Y%m%dT%H%M%SZ}" in str(block["ics"]), block["ics"]


def test_a_refused_caldav_password_marks_the_account_needs_reauth_at_once(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    driver = CalDAVDriver(radicale)
    google = world.account(f"home-{unique}@example.com")["primary"]
    account_id, (personal,) = connect_caldav(world, driver, "Personal")
    world.configure(google, personal)
    world.insert(google, **timed("Lunch", 12, 13))
    world.sync_all(google, personal)
    assert caldav_blocks(driver, personal) == [(instant(12), instant(13))]

    driver.refuse_login()  # the app-specific password was revoked
    try:
        result = world.sync(personal)
    finally:
        radicale.reset()

    assert result.log.status == SyncStatus.ERROR
    with Session(world.db) as session:
        account = session.get(Account, account_id)
        assert account is not None
        assert account.state == AccountState.NEEDS_REAUTH
        calendar = session.exec(select(Calendar).where(Calendar.id == personal.id)).one()
        assert calendar.sync_enabled  # nothing is turned off or deleted because of it
    assert caldav_blocks(driver, personal) == [(instant(12), instant(13))]
    assert google_blocks(world, google) == []


def test_an_invalid_sync_token_runs_a_full_sync_without_a_duplicate(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    """Radicale refuses the token (403 valid-sync-token): the calendar is read afresh, its
    blocks stay one per event, and the fresh token works again."""
    driver = CalDAVDriver(radicale)
    google = world.account(f"token-{unique}@example.com")["primary"]
    _, (personal,) = connect_caldav(world, driver, "Personal")
    world.configure(google, personal)
    driver.add(personal.provider_id, PersonEvent("Before", instant(9), instant(10)))
    world.sync_all(personal, google)
    driver.expire_cursor(personal.provider_id)
    driver.add(personal.provider_id, PersonEvent("After", instant(11), instant(12)))

    result = world.sync(personal)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    assert "token expired: full sync" in result.log.notes
    assert google_blocks(world, google) == [at(9), at(11)]
    assert len(world.rows()) == 2
    driver.add(personal.provider_id, PersonEvent("Later", instant(15), instant(16)))
    again = world.sync(personal)
    assert "token expired: full sync" not in again.log.notes
    assert google_blocks(world, google) == [at(9), at(11), at(15)]


def test_a_caldav_server_without_sync_collection_is_polled_by_its_ctag(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    """The proxy makes Radicale a server without RFC 6578 (no sync-token, the REPORT refused):
    changes and deletes still reach Google, a quiet poll is one request, and calsync's own
    block coming back is an echo."""
    driver = CalDAVDriver(radicale)
    radicale.proxy.without_sync_collection(501)
    try:
        google = world.account(f"ctag-{unique}@example.com")["primary"]
        _, (personal,) = connect_caldav(world, driver, "Personal")
        world.configure(google, personal)
        dentist = driver.add(personal.provider_id, PersonEvent("Dentist", instant(14), instant(15)))
        gym = driver.add(personal.provider_id, PersonEvent("Gym", instant(7), instant(8)))
        world.insert(google, **timed("Board meeting", 9, 10))
        world.sync_all(personal, google)
        assert google_blocks(world, google) == [at(7), at(14)]
        assert caldav_blocks(driver, personal) == [(instant(9), instant(10))]

        quiet = world.sync(personal, kind=SyncKind.POLLING)
        assert quiet.log.status == SyncStatus.SUCCESS, quiet.log.error
        assert quiet.log.provider_calls == 1

        driver.move(personal.provider_id, dentist, instant(16), instant(17))
        driver.delete(personal.provider_id, gym)
        moved = world.sync(personal, kind=SyncKind.POLLING)
        assert moved.log.status == SyncStatus.SUCCESS, moved.log.error
        assert (moved.log.events_updated, moved.log.events_deleted) == (1, 1)
        assert google_blocks(world, google) == [at(16)]

        # Google's new event becomes a block in Radicale; the block coming back is an echo.
        world.insert(google, **timed("Review", 11, 12))
        world.sync(google)
        assert caldav_blocks(driver, personal) == [
            (instant(9), instant(10)),
            (instant(11), instant(12)),
        ]
        echo = world.sync(personal, kind=SyncKind.POLLING)
        assert echo.log.provider_calls == 2  # the ctag, then the window's query: nothing else
        assert (echo.log.blocks_created, echo.log.blocks_updated) == (0, 0)
        assert "preserved 1 user modification" not in echo.log.notes
    finally:
        radicale.reset()


def test_an_old_login_discovers_once_then_keeps_the_calendar_home(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    """A login stored without the calendar home (as before calsync kept it) still opens: the
    first sync that needs the account's addresses (an invitation's answer) discovers them,
    and the login is sealed back with what it found, so no later sync discovers again."""
    driver = CalDAVDriver(radicale)
    google = world.account(f"home-{unique}@example.com")["primary"]
    account_id, (personal,) = connect_caldav(world, driver, "Personal")
    world.configure(google, personal)

    def stored() -> CalDAVPassword:
        with Session(world.db) as session:
            account = session.get(Account, account_id)
            assert account is not None
            assert account.credentials_encrypted is not None
            login = world.vault.open(account.credentials_encrypted)
        assert isinstance(login, CalDAVPassword)
        return login

    def discovery_in(sync: Callable[[], object]) -> int:
        """PROPFINDs above the calendars (well-known, root, principal): discovery's."""
        depth = radicale.home_path.count("/")
        radicale.proxy.state.log.clear()
        sync()
        return sum(
            1
            for method, path in radicale.proxy.requests()
            if method == "PROPFIND" and unquote(path).count("/") <= depth
        )

    assert stored().calendar_home is None
    # A declined invitation: only the account's own address tells that it was declined.
    driver.add(personal.provider_id, PersonEvent("Pitch", instant(15), instant(16), declined=True))
    discovering = discovery_in(lambda: world.sync(personal))
    kept = stored()
    assert kept.calendar_home is not None
    assert unquote(kept.calendar_home) == driver.calendar_url(radicale.home_path)
    assert kept.principal is not None
    assert radicale.username in kept.addresses

    driver.add(personal.provider_id, PersonEvent("Offer", instant(17), instant(18), declined=True))
    assert discovery_in(lambda: world.sync(personal)) == 0
    assert discovery_in(lambda: world.sync(personal, full=True)) == 0
    print(f"discovery PROPFINDs in a sync that reads an invitation: {discovering} -> 0")
    assert discovering >= 2
    assert google_blocks(world, google) == []  # both declined: neither blocks


def test_a_block_whose_row_was_lost_is_adopted_not_doubled(
    world: World, radicale: CalDAVServer, unique: str
) -> None:
    """A crash between the PUT and calsync's commit leaves a block the database does not know:
    the next write of it meets `If-None-Match: *` (412), reads the block and adopts it; one
    block per event stays, in each target, each under a UID of its own."""
    driver = CalDAVDriver(radicale)
    google = world.account(f"lost-{unique}@example.com")["primary"]
    _, (personal, family) = connect_caldav(world, driver, "Personal", "Family")
    world.configure(google, personal, family)
    meeting = world.insert(google, **timed("Board meeting", 9, 10))
    world.sync_all(google, personal, family)
    written = {cal.id: driver.resources(cal.provider_id) for cal in (personal, family)}
    assert [len(found) for found in written.values()] == [1, 1]
    # One source, two targets: two blocks with different names (the digest is per target).
    assert (
        written[personal.id][0][0].rsplit("/", 1)[-1] != written[family.id][0][0].rsplit("/", 1)[-1]
    )

    with Session(world.db) as session:  # the rows the crash never committed
        for row in session.exec(select(BusyBlock)).all():
            session.delete(row)
        session.commit()
    # The next change of the source writes its blocks afresh: each create meets the lost block.
    world.service(google.email).events().patch(
        calendarId=google.provider_id, eventId=meeting["id"], body={"summary": "Board"}
    ).execute()
    result = world.sync(google)

    assert result.log.status == SyncStatus.SUCCESS, result.log.error
    for cal in (personal, family):
        assert caldav_blocks(driver, cal) == [(instant(9), instant(10))]
        # Adopted as it stood: the same resource, not rewritten (its ETag unchanged).
        assert driver.resources(cal.provider_id) == written[cal.id]
    assert len(world.rows()) == 2


@pytest.fixture(scope="module")
def xandikos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalDAVServer]:
    with caldav_server("xandikos", tmp_path_factory.mktemp("xandikos")) as server:
        yield server


def owner_known_as(server: CalDAVServer, *addresses: str) -> None:
    """The principal's calendar-user-address-set, as iCloud gives an Apple ID and its aliases
    (Xandikos keeps one set by PROPPATCH; Radicale names only the principal's path)."""
    hrefs = "".join(f"<D:href>mailto:{a}</D:href>" for a in addresses)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:set><D:prop><C:calendar-user-address-set>{hrefs}</C:calendar-user-address-set>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    reply = server.http.request(
        "PROPPATCH", "/alice/", content=body, headers={"Content-Type": "application/xml"}
    )
    assert reply.status_code == 207, reply.text


def test_an_invitation_to_the_caldav_owners_other_address_is_already_there(
    world: World, xandikos: CalDAVServer, unique: str
) -> None:
    """ "Already there" knows every address the CalDAV owner has (the principal's
    calendar-user-address-set, kept on the account row), not only the login's user name: an
    invitation naming an alias gives no block in that target. An account row from before the
    addresses were kept learns them when discovery runs again (here: the first invitation
    read in the CalDAV calendar, whose answer is read by the owner's addresses)."""
    alias = f"alice-{unique}@icloud.example"
    owner_known_as(xandikos, xandikos.username, alias)
    driver = CalDAVDriver(xandikos)
    google = world.account(f"invites-{unique}@example.com")["primary"]
    account_id, (personal,) = connect_caldav(world, driver, "Personal")
    world.configure(google)
    world.configure(personal, skip_invited=True)
    attendees = [{"email": alias}, {"email": "sam@x.example"}]
    world.insert(google, **timed("Offsite", 9, 10, attendees=attendees))
    world.insert(google, **timed("Review", 11, 12))

    world.sync_all(google, personal)

    # The alias sees the Offsite invitation itself; the Review still blocks.
    assert caldav_blocks(driver, personal) == [(instant(11), instant(12))]

    # As before the account row kept them: the next sync of its calendar fills them in.
    with Session(world.db) as session:
        account = session.get(Account, account_id)
        assert account is not None
        assert alias in (account.addresses or [])
        account.addresses = None
        session.add(account)
        session.commit()
    driver.add(personal.provider_id, PersonEvent("Pitch", instant(15), instant(16), declined=True))
    world.sync(personal)
    world.insert(google, **timed("Planning", 13, 14, attendees=attendees))
    world.sync(google)
    assert caldav_blocks(driver, personal) == [(instant(11), instant(12))]
