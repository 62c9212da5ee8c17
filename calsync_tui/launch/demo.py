"""`calsync demo`'s world: one person's three providers (work on Microsoft 365 in the Graph
emulator, personal on Google in the Google emulator, the family on an iCloud-style CalDAV
calendar in a real Radicale), the server, every account connected with no sign-in to do."""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Collection, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlmodel import Session

from calsync_server.accounts.service import connect_account, ensure_default_user, import_calendars
from calsync_server.emulators.caldav import scenario as caldav_scenario
from calsync_server.emulators.caldav.runner import RunningRadicale, run_radicale
from calsync_server.emulators.google import scenario
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from calsync_server.emulators.microsoft import scenario as graph_scenario
from calsync_server.emulators.microsoft.config import Clock as GraphClock
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import RunningGraphEmulator, run_graph_emulator
from calsync_server.providers.credentials import (
    CalDAVPassword,
    GoogleOAuth,
    MicrosoftTokenCache,
    StoredCredentials,
)
from calsync_tui.launch.embedded import EmbeddedServer, embedded_server
from shared.domain import Provider
from shared.settings import load_settings

GOOGLE, MICROSOFT, CALDAV = "google", "microsoft", "caldav"
PROVIDERS = (GOOGLE, MICROSOFT, CALDAV)
# The Google-only demo's two accounts (tests of the Google tier still build it).
DEMO_ACCOUNTS = (scenario.WORK, scenario.PERSONAL)
# An Entra app id of the demo's own: the Graph emulator accepts any, as Entra would its own.
DEMO_CLIENT_ID = "00000000-0000-0000-0000-0000000de770"
# Where the emulator's consent redirects; never visited: the launcher reads the code itself.
DEMO_REDIRECT = "http://localhost/oauth/microsoft/callback"
# A CalDAV calendar has no push: the demo polls it this often, so its changes show quickly.
DEMO_POLL_SECONDS = 5.0
LIVE_INTERVAL_S = 5.0


@dataclass
class DemoWorld:
    emulator: RunningEmulator  # Google's
    server: EmbeddedServer
    graph: RunningGraphEmulator | None = None
    caldav: RunningRadicale | None = None
    google_accounts: tuple[str, ...] = DEMO_ACCOUNTS
    providers: tuple[str, ...] = field(default=(GOOGLE,))

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.server.token}"},
            timeout=30,
        )


def microsoft_login(graph: RunningGraphEmulator, email: str) -> MicrosoftTokenCache:
    """Sign the mailbox in through MSAL as calsync's sign-in does, the emulator consenting at
    once for the hinted account: the browser's part is one request made here."""
    import msal

    from calsync_server.providers.microsoft.signin import begin_sign_in, client_app, finish_sign_in

    cache = msal.SerializableTokenCache()
    verify = str(graph.ca_path)
    app = client_app(DEMO_CLIENT_ID, f"{graph.tls_url}common", cache=cache, verify=verify)
    flow = begin_sign_in(app, DEMO_REDIRECT, login_hint=email)
    with httpx.Client(verify=ssl.create_default_context(cafile=verify), timeout=30) as browser:
        consent = browser.get(flow["auth_uri"])
    if consent.status_code != 302:
        raise RuntimeError(f"the Graph emulator refused the demo's sign-in: {consent.text}")
    query = parse_qs(urlsplit(consent.headers["location"]).query)
    home = finish_sign_in(app, flow, {key: values[0] for key, values in query.items()})
    return MicrosoftTokenCache(
        cache=str(cache.serialize()), home_account_id=home, client_id=DEMO_CLIENT_ID
    )


def demo_logins(world: DemoWorld) -> Iterator[tuple[Provider, str, StoredCredentials]]:
    """(provider, email, login) of every demo account. The demo owns the emulators' processes,
    so Google's grant comes straight from its store."""
    store = world.emulator.emulator.store
    for email in world.google_accounts:
        access, refresh = store.new_grant(email)
        yield Provider.GOOGLE, email, GoogleOAuth(access_token=access, refresh_token=refresh)
    if world.graph is not None:
        email = graph_scenario.WORK
        yield Provider.MICROSOFT, email, microsoft_login(world.graph, email)
    if world.caldav is not None:
        caldav = world.caldav
        login = CalDAVPassword(url=caldav.url, username=caldav.username, password=caldav.password)
        yield Provider.CALDAV, caldav.username, login


def connect_demo_accounts(world: DemoWorld) -> None:
    """Connect every demo account to the default user, its calendars imported (sync off)."""
    runtime = world.server.runtime
    now = runtime.clock.now()
    with Session(runtime.db) as session:
        user = ensure_default_user(session, runtime.default_token, now)
        assert user.id is not None
        for provider, email, credentials in demo_logins(world):
            account = connect_account(
                session,
                runtime.vault,
                user_id=user.id,
                email=email,
                credentials=credentials,
                now=now,
                provider=provider,
            )
            factory = runtime.provider_factory
            with closing(factory(account.provider, account.id, credentials)) as opened:
                import_calendars(session, account, opened)
        session.commit()


def enable_calendar(client: httpx.Client, calendar: dict[str, Any]) -> None:
    """Sync on through the API; a read-only calendar can only be a source."""
    change: dict[str, Any] = {"sync_enabled": True}
    if calendar["read_only"]:
        change["role"] = "source"
    answer = client.patch(f"api/v1/calendars/{calendar['id']}", json=change)
    answer.raise_for_status()


def enable_every_calendar(world: DemoWorld) -> None:
    with world.api() as client:
        calendars = client.get("api/v1/calendars")
        calendars.raise_for_status()
        for calendar in calendars.json():
            enable_calendar(client, calendar)


def _start_caldav(stack: ExitStack, home: Path, today: date | None, live: bool) -> RunningRadicale:
    """Radicale in this process, the family calendar seeded, live changes if asked."""
    password = secrets.token_urlsafe(18)  # the demo's own server: a fresh one every run
    radicale = stack.enter_context(
        run_radicale(home / "radicale", caldav_scenario.USERNAME, password)
    )
    family = caldav_scenario.FamilyCalendar(radicale)
    stack.callback(family.close)
    caldav_scenario.seed(family, today or datetime.now(UTC).date())
    if live:
        stack.enter_context(caldav_scenario.live_changes(family, LIVE_INTERVAL_S))
    return radicale


@contextmanager
def demo_world(
    home: Path,
    *,
    live: bool = True,
    today: date | None = None,
    push: bool = True,
    enable: bool = True,
    settings: dict[str, Any] | None = None,
    providers: Collection[str] = PROVIDERS,
    **runtime_options: Any,
) -> Iterator[DemoWorld]:
    """The whole demo until the block ends. `today` seeds the scenarios around a fixed day
    (tests); `settings` override the demo's (the environment is ignored: the demo stands
    alone). `providers` ("google" alone: the Google-only demo of both Google accounts)."""
    unknown = set(providers) - set(PROVIDERS)
    if unknown or GOOGLE not in providers:
        raise ValueError(f"the demo's providers are google plus microsoft/caldav, not {unknown}")
    whole_google = set(providers) == {GOOGLE}
    google_scenario = "demo" if whole_google else "personal"
    with ExitStack() as stack:
        config = EmulatorConfig(
            scenario=google_scenario if today is None else "empty",
            live=live,
            live_interval_s=LIVE_INTERVAL_S,
        )
        emulator = stack.enter_context(run_emulator(config))
        if today is not None:
            scenario.seed(emulator.emulator.store, google_scenario, today)
        flags: dict[str, Any] = {
            "home": str(home),
            "google_api_url": emulator.url,
            "poll_interval_seconds": DEMO_POLL_SECONDS,
        }
        graph: RunningGraphEmulator | None = None
        if MICROSOFT in providers:
            # A fixed day starts the emulator's clock on it (its scenario seeds around "now").
            start = datetime.combine(today, time(9), UTC) if today is not None else None
            clock = GraphClock(start)
            graph_config = GraphEmulatorConfig(
                clock=clock, scenario="demo", live=live, live_interval_s=LIVE_INTERVAL_S
            )
            graph = stack.enter_context(run_graph_emulator(graph_config))
            flags.update(
                microsoft_client_id=DEMO_CLIENT_ID,
                microsoft_login_url=graph.tls_url,
                microsoft_graph_url=f"{graph.url}v1.0",
                microsoft_ca_file=str(graph.ca_path),
            )
        caldav = _start_caldav(stack, home, today, live) if CALDAV in providers else None
        flags.update(settings or {})
        loaded = load_settings(flags, environ={})
        server = stack.enter_context(embedded_server(loaded, push_to_self=push, **runtime_options))
        world = DemoWorld(
            emulator,
            server,
            graph=graph,
            caldav=caldav,
            google_accounts=DEMO_ACCOUNTS if whole_google else (scenario.PERSONAL,),
            providers=tuple(p for p in PROVIDERS if p in providers),
        )
        connect_demo_accounts(world)
        if enable:
            enable_every_calendar(world)
        yield world
