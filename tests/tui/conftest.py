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
from sqlmodel import Session, col, select
from textual.pilot import Pilot

from calsync_server.db.models import Notification, PushSubscription
from calsync_tui.app import CalsyncApp
from calsync_tui.client import CalsyncApi
from calsync_tui.launch.demo import PROVIDERS, DemoWorld, demo_world, enable_calendar
from calsync_tui.screens.busy_blocks import BusyBlocksScreen
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


# How the three-provider push demo's subscriptions look (calendar name -> expiry after
# SERVER_NOW, pinned: the emulators date them by their own clocks). Family, on CalDAV, has none.
CHANNEL_EXPIRY = {
    "Calendar": timedelta(days=2, hours=20),
    "Projects": timedelta(days=1, hours=2),
    "United Kingdom holidays": timedelta(days=1, hours=14),
    "alex.morgan@personal.example.com": timedelta(days=6, hours=23),
}
# The lifecycle notice Graph sends about each of the work calendars' subscriptions.
LIFECYCLE = {
    "Calendar": "reauthorizationRequired",
    "Projects": "subscriptionRemoved",
    "United Kingdom holidays": "missed",
}
REMOVED = "Projects"


def _rows(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    answer = client.get(path)
    answer.raise_for_status()
    rows: list[dict[str, Any]] = answer.json()
    return rows


def channels_working(client: httpx.Client) -> bool:
    """Every pushing calendar has an active subscription (Google's opened by its first
    message); the CalDAV calendar is polled by design."""
    rows = _rows(client, "api/v1/channels")
    return len(rows) == len(CHANNEL_EXPIRY) + 1 and all(
        c["push"] == "polled"
        if c["provider"] == "caldav"
        else c["state"] == "active"
        and (c["provider"] != "google" or bool(c["last_notification_at"]))
        for c in rows
    )


def subscriptions_by_name(world: DemoWorld) -> dict[str, PushSubscription]:
    """Each calendar's newest live subscription, by calendar name."""
    names = {c.id: c.name for c in _calendars(world)}
    with Session(world.server.runtime.db) as session:
        rows = session.exec(
            select(PushSubscription)
            .where(PushSubscription.state != ChannelState.STOPPED)
            .order_by(col(PushSubscription.id))
        )
        return {names[r.calendar_id]: r for r in rows}


def lifecycle_notices(world: DemoWorld) -> None:
    """Graph tells of each work calendar's subscription: renew it (renewed in place), it is
    removed (a new one is refused: Graph answers 503 to every create, so it stays failing,
    and the standing clock never brings the retry), it missed changes (a sync)."""
    assert world.graph is not None
    admin = httpx.Client(base_url=world.graph.url, timeout=30)
    with admin, world.api() as client:
        refused = admin.post(
            "emulator/faults",
            json={"method": "subscriptions.create", "status": 503, "times": 1000},
        )
        assert refused.status_code in (200, 201), refused.text
        subscriptions = subscriptions_by_name(world)
        for name, event in LIFECYCLE.items():
            remote = subscriptions[name].remote_id
            sent = admin.post(f"emulator/subscriptions/{remote}/lifecycle", json={"event": event})
            assert sent.status_code == 200, sent.text

        def obeyed() -> bool:
            rows = {c["calendar_name"]: c for c in _rows(client, "api/v1/channels")}
            renewed = subscriptions_by_name(world)["Calendar"].renew_requested_at is None
            remade = rows[REMOVED]["failures"] >= 1 and rows[REMOVED]["state"] == "failing"
            heard = all(rows[name]["notice"] for name in LIFECYCLE)
            return renewed and remade and heard and settled_all(client)

        wait_until(obeyed, timeout=60, what="the lifecycle notices obeyed")


def app_password_refused(world: DemoWorld) -> None:
    """The family's CalDAV server takes a new app password (the old one was revoked): the next
    sync of Family is refused, and its account needs the user."""
    assert world.caldav is not None
    users = world.server.runtime.settings.home / "radicale" / "users"
    users.write_text(f"{world.caldav.username}:revoked-{world.caldav.password}\n")
    with world.api() as client:
        (family,) = [c for c in _rows(client, "api/v1/calendars") if c["name"] == "Family"]
        client.post("api/v1/sync", json={"calendar_id": family["id"]}).raise_for_status()

        def refused() -> bool:
            accounts = _rows(client, "api/v1/accounts")
            caldav = [a for a in accounts if a["provider"] == "caldav"]
            return caldav[0]["state"] == "needs_reauth" and settled_all(client)

        wait_until(refused, timeout=60, what="the CalDAV account refused")


class SettlingClock:
    """Runs at the real pace from `at` while a world is built (a pushed change's sync is
    debounced, a failed subscription retried later: they come due), then, stopped, stands
    still at `at` again."""

    def __init__(self, at: datetime) -> None:
        self._at = at
        self._started: float | None = time.monotonic()

    def now(self) -> datetime:
        if self._started is None:
            return self._at
        return self._at + timedelta(seconds=time.monotonic() - self._started)

    def stop(self) -> None:
        self._started = None


def pin_channels(world: DemoWorld) -> None:
    """What the Channels screen shows of the subscriptions pinned to fixed times around
    SERVER_NOW (the server's clock ran while they were made; the emulators date expiry by
    their own clocks): expiry, the last notification, each notice heard, a failure once.
    Graph renews in place at half-life and a failed one is retried later, which the standing
    clock never reaches."""
    names = {c.id: c.name for c in _calendars(world)}
    with Session(world.server.runtime.db) as session:
        for channel in session.exec(
            select(PushSubscription).where(PushSubscription.state != ChannelState.STOPPED)
        ):
            channel.expires_at = SERVER_NOW + CHANNEL_EXPIRY[names[channel.calendar_id]]
            channel.created_at = channel.renewed_at = SERVER_NOW
            if channel.last_notification_at is not None:
                channel.last_notification_at = SERVER_NOW
            if channel.state == ChannelState.FAILING:
                channel.failures, channel.last_attempt_at = 1, SERVER_NOW
            session.add(channel)
        for notice in session.exec(select(Notification)):
            notice.received_at = SERVER_NOW
            session.add(notice)
        session.commit()


def _calendars(world: DemoWorld) -> list[CalendarOut]:
    with world.api() as client:
        answer = client.get("api/v1/calendars")
        answer.raise_for_status()
        return msgspec.json.decode(answer.content, type=list[CalendarOut])


@pytest.fixture(scope="session")
def push_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoWorld]:
    """The three-provider demo with push: Google's channel and Graph's subscriptions working,
    Graph's lifecycle notices heard (one subscription removed and not made again), the family's
    CalDAV calendar polled and its app password refused; time standing still: for the Channels
    snapshot (read only)."""
    home = tmp_path_factory.mktemp("push-demo-home")
    clock = SettlingClock(SERVER_NOW)
    # Graph's clock starts on DAY at 09:00 (SERVER_NOW) as the server's does: Graph checks a
    # subscription's expiry against its own clock, and calsync dates it by the server's.
    world_of = build_world(home, DAY, push=True, clock=clock, providers=PROVIDERS)
    for world in world_of:
        enable_in_order(world)
        with world.api() as client:
            # The server makes subscriptions on its next scheduler tick (at most 5 s away).
            wait_until(lambda: channels_working(client), timeout=60, what="working channels")
            wait_until(lambda: settled_all(client), timeout=30, what="the pushed syncs done")
        lifecycle_notices(world)
        app_password_refused(world)
        clock.stop()
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


async def busy_blocks_shown(pilot: Pilot[Any], total: int) -> BusyBlocksScreen:
    """The Busy blocks screen (key 4), once it has loaded all `total` of the user's blocks."""
    app = pilot.app
    assert isinstance(app, CalsyncApp)
    await pilot.press("4")

    def loaded() -> bool:
        screen = app.screen
        return (
            isinstance(screen, BusyBlocksScreen) and not screen.fetching and screen.loaded == total
        )

    await until(pilot, loaded, what=f"all {total} blocks")
    screen = app.screen
    assert isinstance(screen, BusyBlocksScreen)
    return screen


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
