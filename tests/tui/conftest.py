"""The dashboard tier: the Textual app against a real server and emulator, the demo's data."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from sqlmodel import Session, select
from textual.pilot import Pilot

from calsync_server.db.models import PushSubscription
from calsync_tui.app import CalsyncApp
from calsync_tui.client import CalsyncApi
from calsync_tui.launch.demo import PROVIDERS, DemoWorld, demo_world, enable_calendar
from calsync_tui.stream import ConnectionState
from shared.clock import Clock, FixedClock
from shared.domain import ChannelState
from shared.schemas import CalendarOut
from tests.support.clock import SteadyClock
from tests.support.google_service import calendar_service
from tests.support.waiting import DEADLINE_S, wait_until

# The demo scenario seeded around a fixed Wednesday, the server's clock standing still on it,
# and the dashboard's clock 12 s later: every "12 s ago" and every date on screen is stable.
DAY = date(2025, 3, 12)
SERVER_NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
DASHBOARD_NOW = SERVER_NOW + timedelta(seconds=12)
SIZE = (120, 36)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def settled(client: httpx.Client, calendar_id: int) -> bool:
    """The calendar has synced at least once and nothing waits in the queue."""
    logs = client.get("api/v1/sync-logs", params={"calendar_id": calendar_id}).json()["items"]
    status = client.get("api/v1/status").json()
    return bool(logs) and status["queue_depth"] == 0


def enable_in_order(world: DemoWorld, names: list[str] | None = None) -> None:
    """Sync on for the demo's calendars one at a time, each settled before the next, so the
    sync log and the rows come out the same on every run."""
    with world.api() as client:
        for calendar in client.get("api/v1/calendars").json():
            if names is not None and calendar["name"] not in names:
                continue
            enable_calendar(client, calendar)
            wait_until(
                lambda c=calendar: settled(client, c["id"]),
                timeout=90,  # a loaded machine (CI beside other work) is slow, not wrong
                what=f"the first sync of {calendar['name']}",
            )


def build_world(
    home: Path, today: date, *, push: bool = False, **options: Any
) -> Iterator[DemoWorld]:
    with demo_world(
        home,
        live=False,
        today=today,
        push=push,
        enable=False,
        settings={"workers": 1, "poll_interval_seconds": 3600.0},
        **{"providers": ("google",), **options},
    ) as world:
        yield world


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The demo, every calendar synced, time standing still: for snapshots (read only)."""
    home = tmp_path_factory.mktemp("demo-home")
    for world in build_world(home, DAY, clock=FixedClock(SERVER_NOW)):
        enable_in_order(world)
        yield world


@pytest.fixture(scope="session")
def three_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The three-provider demo (work on the Graph emulator, personal on Google, family on
    Radicale), every calendar synced, time standing still: for the week view (read only)."""
    home = tmp_path_factory.mktemp("three-demo-home")
    for world in build_world(home, DAY, clock=FixedClock(SERVER_NOW), providers=PROVIDERS):
        enable_in_order(world)
        yield world


# How the push demo's channels look (calendar name -> expiry after SERVER_NOW); the read-only
# calendar, which calsync never writes to and so never hears from again, is the failing one.
CHANNEL_EXPIRY = {
    "alex.morgan@work.example.com": timedelta(days=6, hours=23),
    "Projects": timedelta(days=5, hours=2),
    "Company holidays": timedelta(days=2, hours=4),
    "alex.morgan@personal.example.com": timedelta(hours=30, minutes=5),
    "Family": timedelta(days=3, hours=1),
}
FAILING_CHANNEL = "Company holidays"


def channels_working(client: httpx.Client) -> bool:
    """Every synced calendar has an active channel that delivered its first message."""
    channels = client.get("api/v1/channels").json()
    return len(channels) == len(CHANNEL_EXPIRY) and all(
        c["state"] == "active" and c["last_notification_at"] for c in channels
    )


def pin_channels(world: DemoWorld) -> None:
    """The channels were made through the server (its own URL public, the emulator pushing to
    it), but the emulator dates their expiry by its wall clock, not the server's injected one:
    the expiry is pinned here to fixed times after SERVER_NOW. One is marked failing, as the
    server marks a channel whose renewals fail; last tried "now" by the standing clock, it is
    never due for a retry, so the server leaves it so. Notifications arriving later only set
    what they already say (the clock stands still)."""
    names = {c.id: c.name for c in _calendars(world)}
    with Session(world.server.runtime.db) as session:
        for channel in session.exec(
            select(PushSubscription).where(PushSubscription.state == ChannelState.ACTIVE)
        ):
            name = names[channel.calendar_id]
            channel.expires_at = SERVER_NOW + CHANNEL_EXPIRY[name]
            if name == FAILING_CHANNEL:
                channel.state = ChannelState.FAILING
                channel.failures = 3
                channel.last_error = "renewal refused: 503 backendError"
                channel.last_attempt_at = SERVER_NOW
                channel.last_notification_at = SERVER_NOW - timedelta(hours=2, minutes=5)
            session.add(channel)
        session.commit()


def _calendars(world: DemoWorld) -> list[CalendarOut]:
    with world.api() as client:
        answer = client.get("api/v1/calendars")
        answer.raise_for_status()
        return msgspec.json.decode(answer.content, type=list[CalendarOut])


@pytest.fixture(scope="session")
def push_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The demo with push notifications: channels working for four calendars, one failing and
    polled, time standing still: for the Channels snapshot (read only)."""
    home = tmp_path_factory.mktemp("push-demo-home")
    for world in build_world(home, DAY, push=True, clock=FixedClock(SERVER_NOW)):
        enable_in_order(world)
        with world.api() as client:
            # The server makes channels on its next scheduler tick (at most 5 s away).
            wait_until(lambda: channels_working(client), timeout=30, what="working channels")
            wait_until(lambda: settled_all(client), timeout=30, what="the pushed syncs done")
        pin_channels(world)
        yield world


def settled_all(client: httpx.Client) -> bool:
    return bool(client.get("api/v1/status").json()["queue_depth"] == 0)


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Iterator[DemoWorld]:
    """A demo of this test's own, nothing enabled yet: for actions. The demo's fortnight lies
    around DAY and the server's clock starts at SERVER_NOW, moving at the real pace (leases,
    retries and ages behave as in production): by then the day's first events (the 09:30
    stand-up in Berlin) have ended, so every run sees a day with a past and a future, whatever
    the hour it runs at."""
    yield from build_world(tmp_path / "home", DAY, clock=SteadyClock(SERVER_NOW))


def dashboard(world: DemoWorld, *, clock: Clock | None = None) -> CalsyncApp:
    """The dashboard on `world`'s server, on the server's clock unless told otherwise."""
    api = CalsyncApi(world.server.url, world.server.token)
    return CalsyncApp(api, clock=clock or world.server.runtime.clock)


# The zone the week view is drawn in for pictures: the demo's work (London: UTC in March).
VIEWER_ZONE = ZoneInfo("Europe/London")


def snapshot_app(world: DemoWorld, *, mode: str | None = None) -> CalsyncApp:
    api = CalsyncApi(world.server.url, world.server.token)
    return CalsyncApp(api, clock=FixedClock(DASHBOARD_NOW), zone=VIEWER_ZONE, mode=mode)


async def until(
    pilot: Pilot[Any], probe: Callable[[], object], deadline_s: float = DEADLINE_S, what: str = ""
) -> None:
    """wait_until for code inside the app's event loop: the probe is re-checked between
    pauses that let the app work (a blocking wait would freeze the app it waits for)."""
    deadline = time.monotonic() + deadline_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what or probe}")
        await pilot.pause(0.02)


async def live(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, CalsyncApp)
    await until(pilot, lambda: app.connection is ConnectionState.LIVE, what="the live stream")


def emulator_blocks(world: DemoWorld, email: str, calendar_id: str) -> list[dict[str, Any]]:
    """calsync's blocks in one emulator calendar, read through the Calendar API."""
    access, _ = world.emulator.emulator.store.new_grant(email)
    service = calendar_service(world.emulator.url, access)
    answer = (
        service.events()
        .list(
            calendarId=calendar_id,
            privateExtendedProperty="calsync=busy-block",
            singleEvents=True,
            maxResults=2500,
        )
        .execute()
    )
    items: list[dict[str, Any]] = answer.get("items", [])
    return items


def google_account(world: DemoWorld, email: str, *calendars: str) -> dict[str, Any]:
    """A Google account in the emulator only: calsync learns of it by signing in. Answers the
    emulator's account, with its calendars' ids."""
    made = httpx.post(
        f"{world.emulator.url}emulator/accounts",
        json={"email": email, "calendars": [{"summary": c} for c in calendars]},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    account: dict[str, Any] = made.json()
    return account


def browser_signs_in(auth_url: str, email: str) -> str:
    """What the person does in the browser: open the link, pick the account on the emulator's
    chooser (it knows three), consent; the emulator redirects to the server's callback."""
    chooser = httpx.get(auth_url, timeout=30)
    assert chooser.status_code == 200, chooser.text
    links = {
        html.unescape(m[1]): html.unescape(m[0])
        for m in re.findall(r'<a href="([^"]+)">([^<]+)</a>', chooser.text)
    }
    page = httpx.get(links[email], follow_redirects=True, timeout=30)
    assert page.status_code == 200, page.text
    return page.text


def sign_in(world: DemoWorld, email: str) -> None:
    """The account signs in through the server: a sign-in it starts, the browser finishing it."""
    with world.api() as client:
        answer = client.post("api/v1/accounts/google/authorize", json={})
        assert answer.status_code in (200, 201), answer.text
    page = browser_signs_in(answer.json()["auth_url"], email)
    assert f"{email} is connected" in page


def screen_text(app: CalsyncApp) -> str:
    """What the terminal shows now, as text: the current screen's lines (a dialog's too)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
