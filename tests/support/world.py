"""A test world: a real database, the emulator over HTTP, calsync's engine between (engine and
server tiers)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, select

from calsync_server.accounts.service import connect_account, ensure_user, import_calendars
from calsync_server.accounts.vault import CredentialVault, GoogleOAuth, StoredCredentials
from calsync_server.db.engine import create_db_engine, upgrade_database
from calsync_server.db.models import BusyBlock, Calendar
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.providers.retry import RetryPolicy
from calsync_server.sync.engine import SyncEngine, SyncResult
from shared.domain import SyncKind
from shared.settings import load_settings
from tests.support.google_service import calendar_service

# Tiny backoff: tests check that retries happen, not how long they wait.
FAST_RETRY = RetryPolicy(attempts=4, base_seconds=0.01, max_seconds=0.05)


@dataclass(frozen=True)
class Cal:
    """A calendar as both sides know it: calsync's id and the provider's."""

    id: int
    provider_id: str
    email: str


class World:
    def __init__(self, emulator: RunningEmulator, database_url: str, home: Path) -> None:
        self.emulator = emulator
        self.settings = load_settings(
            {"home": str(home), "database_url": database_url, "google_api_url": emulator.url},
            environ={},
        )
        self.db = create_db_engine(database_url)
        upgrade_database(self.db)
        self.vault = CredentialVault(home)
        self.engine = SyncEngine(self.db, self.settings, vault=self.vault, retry=FAST_RETRY)
        self.admin = httpx.Client(base_url=emulator.url, timeout=10)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.users: dict[str, int] = {}
        self._services: dict[tuple[str, int], Any] = {}

    def close(self) -> None:
        for service in self._services.values():
            service.close()
        self.admin.delete("/emulator/faults")  # the emulator outlives the test
        self.admin.close()
        self.db.dispose()

    def user(self, name: str = "ada") -> int:
        if name not in self.users:
            with Session(self.db) as session:
                user = ensure_user(session, name, f"token-{name}", datetime.now(UTC))
                session.commit()
                assert user.id is not None
                self.users[name] = user.id
        return self.users[name]

    def account(
        self,
        email: str,
        *others: str,
        user: str = "ada",
        readers: tuple[str, ...] = (),
        shared: dict[str, Cal] | None = None,
    ) -> dict[str, Cal]:
        """Create the account in the emulator and connect it; calendars by summary ("primary").
        Each of `shared` (summary: an existing calendar) is shared into this login too."""
        specs: list[dict[str, Any]] = [{"summary": s} for s in others]
        specs += [{"summary": s, "access_role": "reader"} for s in readers]
        specs += [{"id": c.provider_id, "summary": s} for s, c in (shared or {}).items()]
        answer = self.admin.post(
            "/emulator/accounts",
            json={"email": email, "time_zone": "Europe/Berlin", "calendars": specs},
        )
        assert answer.status_code == 201, answer.text
        data = answer.json()
        self.tokens[email] = data
        credentials = GoogleOAuth(
            access_token=data["access_token"], refresh_token=data["refresh_token"]
        )
        with Session(self.db) as session:
            account = connect_account(
                session,
                self.vault,
                user_id=self.user(user),
                email=email,
                credentials=credentials,
                now=datetime.now(UTC),
            )
            factory = self.engine.provider_factory
            with closing(factory(account.provider, account.id, credentials)) as provider:
                imported = import_calendars(session, account, provider)
            session.commit()
            by_provider_id = {c.provider_calendar_id: c for c in imported}
        result = {"primary": self._cal(by_provider_id[email], email)}
        for made in data["calendars"]:
            if made["id"] != email:
                result[made["summary"]] = self._cal(by_provider_id[made["id"]], email)
        return result

    def work_and_home(self, unique: str) -> tuple[Cal, Cal]:
        """Ada's two accounts' primary calendars, "work" and "home", still off."""
        work = self.account(f"work-{unique}@example.com")["primary"]
        home = self.account(f"home-{unique}@example.com")["primary"]
        return work, home

    @staticmethod
    def _cal(calendar: Calendar, email: str) -> Cal:
        assert calendar.id is not None
        return Cal(calendar.id, calendar.provider_calendar_id, email)

    def configure(self, *cals: Cal, **settings: Any) -> None:
        with Session(self.db) as session:
            for cal in cals:
                calendar = session.get(Calendar, cal.id)
                assert calendar is not None
                for name, value in {"sync_enabled": True, **settings}.items():
                    setattr(calendar, name, value)
                session.add(calendar)
            session.commit()

    def engine_through(self, provider: Callable[[StoredCredentials, str], Any]) -> SyncEngine:
        """An engine like the world's own whose providers the test makes, from each account's
        credentials and the emulator's URL (to act at one moment of a sync)."""
        return SyncEngine(
            self.db,
            self.settings,
            vault=self.vault,
            provider_factory=lambda _name, _account, credentials: provider(
                credentials, self.emulator.url
            ),
        )

    def sync(self, cal: Cal, *, full: bool = False, kind: SyncKind = SyncKind.MANUAL) -> SyncResult:
        return self.engine.sync_calendar(cal.id, kind=kind, full=full)

    def sync_all(self, *cals: Cal) -> list[SyncResult]:
        """Sync each calendar, then each again: the second pass consumes the echoes."""
        return [self.sync(cal) for cal in cals] + [self.sync(cal) for cal in cals]

    def service(self, email: str) -> Any:
        """The account's Calendar API client; one per thread (httplib2 is not thread-safe)."""
        key = (email, threading.get_ident())
        if key not in self._services:
            self._services[key] = calendar_service(
                self.emulator.url, self.tokens[email]["access_token"]
            )
        return self._services[key]

    def insert(self, cal: Cal, **body: Any) -> dict[str, Any]:
        event: dict[str, Any] = (
            self.service(cal.email).events().insert(calendarId=cal.provider_id, body=body).execute()
        )
        return event

    def blocks(self, cal: Cal) -> list[dict[str, Any]]:
        """calsync's blocks in a calendar, as the provider holds them (by the private mark)."""
        items: list[dict[str, Any]] = []
        request = (
            self.service(cal.email)
            .events()
            .list(
                calendarId=cal.provider_id,
                privateExtendedProperty="calsync=busy-block",
                singleEvents=True,
                maxResults=2500,
            )
        )
        while request is not None:
            page = request.execute()
            items.extend(page.get("items", []))
            request = self.service(cal.email).events().list_next(request, page)
        return items

    def rows(self) -> list[BusyBlock]:
        with Session(self.db) as session:
            return list(session.exec(select(BusyBlock)))

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.admin.get("/emulator/stats").json()
        return answer

    def reset_stats(self) -> None:
        self.admin.post("/emulator/stats/reset").raise_for_status()

    def fault(self, method: str, status: int, times: int = 1, reason: str | None = None) -> None:
        body: dict[str, Any] = {"method": method, "status": status, "times": times}
        if reason:
            body["reason"] = reason
        self.admin.post("/emulator/faults", json=body).raise_for_status()

    def execute(self, statement: Any) -> None:
        with self.db.begin() as connection:
            connection.execute(statement)


_test_day: datetime | None = None


def pin_test_day(now: datetime | None) -> None:
    """Fix the day `at` counts from to the UTC day of `now` (None: the day of each call).
    tests/conftest.py pins it as each test starts: a test running across midnight still means
    one instant by `at(9)` from its first line to its last."""
    global _test_day
    _test_day = None if now is None else _midnight(now)


def _midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def at(hours: float, days: int = 1) -> str:
    """An instant `days` after the day the test started on, at `hours` o'clock UTC, as Google
    writes it. Tomorrow (the default) lies in the future and in the sync window (which starts
    at the past local midnight of the user's zone) whatever the hour and the zone."""
    day = _test_day or _midnight(datetime.now(UTC))
    return (day + timedelta(days=days, hours=hours)).isoformat().replace("+00:00", "Z")


def timed(summary: str, start: float, end: float, days: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": at(start, days)},
        "end": {"dateTime": at(end, days)},
        **extra,
    }
