"""`calsync demo`'s world: the emulator (demo scenario), the server, both accounts connected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from calsync_server.accounts.service import connect_account, ensure_default_user, import_calendars
from calsync_server.accounts.vault import GoogleOAuth
from calsync_server.emulators.google import scenario
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from calsync_tui.launch.embedded import EmbeddedServer, embedded_server
from shared.settings import load_settings

DEMO_ACCOUNTS = (scenario.WORK, scenario.PERSONAL)


@dataclass
class DemoWorld:
    emulator: RunningEmulator
    server: EmbeddedServer

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.server.token}"},
            timeout=30,
        )


def connect_demo_accounts(world: DemoWorld) -> None:
    """Connect both demo accounts to the default user, as a sign-in would (the demo owns the
    emulator's process, so it takes a grant straight from its store: no browser needed)."""
    runtime = world.server.runtime
    store = world.emulator.emulator.store
    now = runtime.clock.now()
    with Session(runtime.db) as session:
        user = ensure_default_user(session, runtime.default_token, now)
        assert user.id is not None
        for email in DEMO_ACCOUNTS:
            access, refresh = store.new_grant(email)
            credentials = GoogleOAuth(access_token=access, refresh_token=refresh)
            account = connect_account(
                session,
                runtime.vault,
                user_id=user.id,
                email=email,
                credentials=credentials,
                now=now,
            )
            factory = runtime.provider_factory
            with closing(factory(account.provider, account.id, credentials)) as provider:
                import_calendars(session, account, provider)
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


@contextmanager
def demo_world(
    home: Path,
    *,
    live: bool = True,
    today: date | None = None,
    push: bool = True,
    enable: bool = True,
    settings: dict[str, Any] | None = None,
    **runtime_options: Any,
) -> Iterator[DemoWorld]:
    """The whole demo until the block ends. `today` seeds the scenario around a fixed day
    (tests); `settings` override the demo's (the environment is ignored: the demo stands alone)."""
    config = EmulatorConfig(scenario="demo" if today is None else "empty", live=live)
    with run_emulator(config) as emulator:
        if today is not None:
            scenario.seed(emulator.emulator.store, "demo", today)
        flags: dict[str, Any] = {"home": str(home), "google_api_url": emulator.url}
        flags.update(settings or {})
        loaded = load_settings(flags, environ={})
        with embedded_server(loaded, push_to_self=push, **runtime_options) as server:
            world = DemoWorld(emulator, server)
            connect_demo_accounts(world)
            if enable:
                enable_every_calendar(world)
            yield world
