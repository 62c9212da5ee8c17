"""A simulated season: a seeded random walk of a mixed user (Google, Microsoft, CalDAV on
Radicale, two calendars each) and a second user through the drivers and calsync's real engine,
the injected clock moved a day at a time, with faults; the invariant read back from every
provider's own calendars after each simulated day (oracle.py).

A day: at 05:00 the daily safety net (a full sync of every calendar), then a check; then the
day's changes, each followed by its push notification's sync (Google and Graph; sometimes the
notification is lost, sometimes the provider has a bad moment first); now and then a real
`calsync serve` on the walk's database is killed by SIGKILL mid-write and a restarted one takes
its job back, and on a PostgreSQL cluster of the walk's own the database goes away for a few
seconds while the server writes (serve_at.py says how it runs on the walk's clock); in the
evening the faults pass and every calendar is synced once more (CalDAV's poll, the echoes'
notifications and the queue's retries of failed syncs), then a check. Steps are plain data: a
failing walk is replayed from its seed or from the step list it saves (shrink.py)."""

from __future__ import annotations

import itertools
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlmodel import Session, select

from calsync_server.accounts.disconnect import disconnect_account
from calsync_server.accounts.service import connect_account, import_calendars
from calsync_server.db.models import Account, BusyBlock, Calendar, SyncJob
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.jobs.worker import run_job
from calsync_server.providers.registry import ProviderConfig, provider_factory
from calsync_server.runtime import Runtime
from calsync_server.scheduler import pid_alive
from shared.clock import FixedClock
from shared.domain import AccountState, JobState, Provider, SyncKind, SyncStatus
from tests.reliability import serve_at
from tests.reliability.oracle import (
    CalendarState,
    Flags,
    HandEdit,
    Instance,
    compare,
    expected_blocks,
    read,
)
from tests.server.pg_cluster import Cluster, find_bin
from tests.support.drivers.base import Driver, PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer, caldav_server
from tests.support.drivers.google import GoogleDriver
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.waiting import wait_until
from tests.support.world import FAST_RETRY, World

# A fixed Wednesday: every run of a seed is the same walk whatever day the suite runs on, and
# it lives through daylight saving twice: the US's change on 2030-03-10 (day 4, inside the
# suite's short walk) and the EU's on 2030-03-31 (day 25). The mixed user keeps a calendar on
# New York's clock beside Berlin's, zoned series in both, and working hours in either.
BASE = datetime(2030, 3, 6, tzinfo=UTC)
# The walks saved before the season started on 2030-03-06 (their steps name times after it).
BASE_BEFORE_US_DST = datetime(2030, 3, 27, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = (BERLIN, NEW_YORK)
HORIZON_DAYS = 90
# The day's provider requests (calsync's only: the person's and the oracle's are not counted)
# stay within BUDGET_BASE + BUDGET_PER_CHANGE per change: the safety net's full syncs and the
# evening pass cost about the same every day, a change its reads and writes in each target.
TIMEOUT_S = 2.0
BUDGET_BASE = 200
BUDGET_PER_CHANGE = 25
# The rare steps, once each in the first days whatever the seed (the suite's short walk sees
# them all); later they come at random.
FORCED = {
    1: ("refuse", "caldav"),
    2: ("disconnect", "ada-microsoft"),
    3: ("refuse", "ada-microsoft"),
    4: ("disconnect", "caldav"),
}
# Blocks edited by hand in the first days whatever the seed (the suite's short walk sees each
# edit), later at random.
FORCED_HAND = {1: "move", 2: "delete", 3: "retitle"}
# A kill -9 of `calsync serve` mid-write comes on this day whatever the seed (the suite's short
# walk sees one), later on a day in KILL_RATE.
FORCED_KILL_DAY = 2
KILL_RATE = 0.08
# On its own PostgreSQL cluster (make soak), the database goes away for a few seconds while the
# server syncs: on the first day whatever the seed, later on a day in OUTAGE_RATE.
FORCED_OUTAGE_DAY = 0
OUTAGE_RATE = 0.1
# While the killed server writes blocks, each Google and Graph write is this slow: the kill
# lands between writes, with a write the provider made and calsync never heard the answer of.
SLOW_WRITE_MS = 150
OFFICE_HOURS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
WORDS = ("Dentist", "Standup", "Review", "Lunch", "Gym", "Planning", "Call", "skip party")


class SeasonClock(FixedClock):
    """calsync's clock in the season: it stands still, and the walk sets it."""

    def set(self, at: datetime) -> None:
        self.advance(at - self.now())


class SeasonFailure(AssertionError):
    """The invariant broke: the seed, the day and what differed; ``steps`` is where the steps
    walked so far are saved (when the walk saved them)."""

    steps: Path | None = None


@dataclass
class Figures:
    days: int = 0
    changes: int = 0
    faults: int = 0
    lost_notifications: int = 0
    database_outages: int = 0
    outages_mid_sync: int = 0  # ... that came while the server's sync was running
    kills: int = 0  # `calsync serve` killed by SIGKILL ...
    kills_mid_sync: int = 0  # ... while its sync was still running (its job taken back)
    # Blocks the person moved, retitled or deleted by hand in a target, by the edit.
    hand_edits: dict[str, int] = field(default_factory=dict)
    refusals: int = 0
    disconnects: int = 0
    # "provider kind" -> how many (Graph's and CalDAV's timeouts included).
    fault_kinds: dict[str, int] = field(default_factory=dict)
    # The daylight saving changes the walked days crossed ("Europe/Berlin 2030-03-31").
    dst_changes: list[str] = field(default_factory=list)
    syncs: int = 0
    failed_syncs: int = 0
    calls_per_day: list[int] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class EventState:
    """An event the person made: where, what the oracle must know, and its series' occurrences
    (original start -> touched already)."""

    handle: str
    calendar: str
    provider_id: str
    recurring: bool = False
    occurrences: list[datetime] = field(default_factory=list)
    timed: bool = True
    span: tuple[datetime, datetime] | None = None  # a single timed event's, as last set


def _iso(value: datetime | date) -> str:
    return value.isoformat()


def _time(text: str) -> datetime | date:
    """A step's time: an instant in UTC (a person's client names a zone, never a bare offset),
    or a date."""
    return datetime.fromisoformat(text).astimezone(UTC) if "T" in text else date.fromisoformat(text)


class Season:
    """The world of one walk: the providers, calsync's database and engine, the walk's model."""

    def __init__(
        self,
        emulator: RunningEmulator,
        graph: GraphEndpoints,
        radicale: CalDAVServer,
        home: Path,
        database_url: str,
        *,
        faults: bool,
        cluster: Cluster | None = None,
        base: datetime = BASE,
    ) -> None:
        self.emulator = emulator
        # Day 0's midnight (UTC): the days of the steps count from it.
        self.base = base
        # The providers are read over a fixed range around the season (the window never
        # leaves it).
        self.read_range = (base - timedelta(days=30), base + timedelta(days=400))
        # The PostgreSQL cluster calsync's database lives in, when the walk may stop it.
        self.cluster = cluster
        self.radicale = radicale
        self.faults_on = faults
        self.clock = SeasonClock(base + timedelta(hours=5))
        self.world = World(emulator, database_url, home)
        self.world.settings = msgspec.structs.replace(
            self.world.settings,
            microsoft_graph_url=f"{graph.url}v1.0",
            microsoft_login_url=graph.tls_url,
            microsoft_ca_file=graph.ca_path,
            horizon_days=HORIZON_DAYS,
        )
        # The runtime's engine syncs; the runtime itself disconnects an account as the API does.
        # Requests time out after TIMEOUT_S, so that a stalled answer is a timeout in seconds.
        # The providers date what they write (a CalDAV block's DTSTAMP, an HTTP-date
        # Retry-After's wait) by the season's clock, as the engine's factory gives them its own.
        config = ProviderConfig.from_settings(
            self.world.settings, FAST_RETRY, timeout=TIMEOUT_S, clock=self.clock
        )
        self.runtime = Runtime(
            self.world.settings,
            clock=self.clock,
            provider_factory=provider_factory(config),
            background=False,
        )
        self.engine = self.runtime.engine
        self.world.engine = self.engine
        google = GoogleDriver(emulator, f"season{id(self)}")
        ada_graph, bob_graph = MicrosoftDriver(graph), MicrosoftDriver(graph, display_name="Bob")
        self.drivers: dict[str, Driver] = {
            "google": google,
            "ada-microsoft": ada_graph,
            "bob-microsoft": bob_graph,
            "caldav": CalDAVDriver(radicale),
        }
        self.graph_admin = ada_graph.admin
        self.cals: dict[str, CalendarState] = {}
        self.ids: dict[str, int] = {}  # calendar name -> calsync's id (changes on re-add)
        self.accounts: dict[str, list[str]] = {}  # account key -> its calendars' names
        self.events: dict[str, EventState] = {}
        self.flags: dict[str, Flags] = {}
        # (target, handle) -> the person's edit of the handle's block there (oracle.HandEdit).
        self.hand: dict[tuple[str, str], HandEdit] = {}
        # Old times of Google events moved out of the window today, whose blocks may stay until
        # the next safety net (the evening check leaves them out; the morning one does not).
        self.unseen: list[tuple[datetime, datetime]] = []
        # CalDAV calendars changed today with a fault for their poll: the evening's first sync
        # of each meets it (CalDAV has no push: its bad moment comes when it is polled).
        self.poll_faults: dict[str, dict[str, Any]] = {}
        self.figures = Figures()
        self.steps: list[dict[str, Any]] = []
        self.handles = 0
        self._day_calls = 0
        layout = {
            ("ada", "google"): ["Work", "Team"],
            ("ada", "ada-microsoft"): ["Outlook", "Family"],
            ("ada", "caldav"): ["Personal", "Club"],
            ("bob", "google"): ["Bob work"],
            ("bob", "bob-microsoft"): ["Bob home"],
        }
        for (user, key), names in layout.items():
            driver = self.drivers[key]
            for name in names:
                made = driver.new_calendar(name)
                self.cals[name] = CalendarState(name, user, driver, made)
            account = key if key != "google" else f"{user}-google"
            self.accounts.setdefault(account, []).extend(names)
        for account in self.accounts:
            self._connect(account)
        for name, cal in self.cals.items():
            # Bob shows titles: a block of his found in Ada's calendars gives itself away.
            changes: dict[str, Any] = {
                "enabled": True,
                "busy_title": "title" if cal.user == "bob" else "private",
            }
            if name == "Club":
                # Ada's club meets in New York: its blocks' working hours follow the US's
                # clock, which changes three weeks before Berlin's.
                changes.update(working_hours=OFFICE_HOURS, time_zone="America/New_York")
            self._apply(name, changes)

    def close(self) -> None:
        for driver in self.drivers.values():
            close = getattr(driver, "close", None)
            if close is not None and not isinstance(driver, CalDAVDriver):
                close()
        self.world.close()
        self.runtime.db.dispose()

    # -- accounts -------------------------------------------------------------------------------

    def _connect(self, account: str) -> None:
        """Sign the account in (new, again after a refused login, or re-added): its calendars
        as calsync knows them; a new calendar arrives with sync off."""
        names = self.accounts[account]
        user = self.cals[names[0]].user
        with Session(self.world.db) as session:
            by_login: dict[str, list[str]] = {}
            for name in names:
                cal = self.cals[name]
                by_login.setdefault(cal.driver.login(cal.provider_id).email, []).append(name)
            for email, members in by_login.items():
                first = self.cals[members[0]]
                login = first.driver.login(first.provider_id)
                stored = connect_account(
                    session,
                    self.world.vault,
                    user_id=self.world.user(user),
                    email=email,
                    credentials=login.credentials,
                    now=self.clock.now(),
                    provider=Provider(login.provider),
                )
                factory = self.engine.provider_factory
                with closing(factory(stored.provider, stored.id, login.credentials)) as provider:
                    imported = {
                        c.provider_calendar_id: c
                        for c in import_calendars(session, stored, provider)
                    }
                session.commit()
                for name in members:
                    row = imported[self.cals[name].provider_id]
                    assert row.id is not None
                    self.ids[name] = row.id
                    if self.cals[name].time_zone:
                        # The zone the walk gave the calendar stands for the provider's own
                        # (its drivers make calendars without one): a sign-in's import, which
                        # takes the provider's, must not forget it.
                        row.time_zone = self.cals[name].time_zone
                        session.add(row)
                session.commit()

    def _account_id(self, name: str) -> int:
        with Session(self.world.db) as session:
            calendar = session.get(Calendar, self.ids[name])
            assert calendar is not None
            return calendar.account_id

    # -- settings, as the API's PATCH /calendars/{id} applies them ------------------------------

    def _apply(self, name: str, changes: dict[str, Any]) -> None:
        cal = self.cals[name]
        was_on = cal.enabled
        for key, value in changes.items():
            setattr(cal, key, value)
        with Session(self.world.db) as session:
            row = session.get(Calendar, self.ids[name])
            assert row is not None
            row.sync_enabled = cal.enabled
            row.role = cal.role  # type: ignore[assignment]
            row.busy_title = cal.busy_title  # type: ignore[assignment]
            row.include_all_day = cal.include_all_day
            row.title_exclude = list(cal.exclude)
            row.working_hours = cal.working_hours
            row.merge_blocks = cal.merge
            if cal.time_zone:
                row.time_zone = cal.time_zone
            turned_off = was_on and not cal.enabled
            if turned_off:
                row.sync_token = None  # its events go stale while off (the API's rule)
            session.add(row)
            session.commit()
        if not (cal.enabled and cal.role in ("target", "both")):
            # No longer a target: every block of calsync's there goes, hand-edited ones too,
            # and a block deleted by hand is made afresh when it is a target again.
            self.hand = {k: v for k, v in self.hand.items() if k[0] != name}
        if cal.reachable and (cal.enabled or turned_off):
            self._sync(name, full=cal.enabled, kind=SyncKind.MANUAL)

    # -- calsync's syncs ------------------------------------------------------------------------

    def _calls(self) -> int:
        google = int(self.world.admin.get("/emulator/stats").json()["requests"])
        graph = int(self.graph_admin.get("/emulator/stats").json()["requests"])
        return google + graph + len(self.radicale.proxy.requests())

    def _sync(self, name: str, *, full: bool = False, kind: SyncKind = SyncKind.WEBHOOK) -> bool:
        """One sync as a worker runs it; False when it did not succeed (the queue keeps it)."""
        before = self._calls()
        ok = False
        try:
            result = self.engine.sync_calendar(self.ids[name], kind=kind, full=full)
            ok = result.log.status == SyncStatus.SUCCESS
        finally:
            self._day_calls += self._calls() - before
            self._clear_faults()
        self.figures.syncs += 1
        self.figures.failed_syncs += not ok
        return ok

    def _clear_faults(self) -> None:
        self.world.admin.delete("/emulator/faults")
        self.graph_admin.delete("/emulator/faults")
        with self.radicale.proxy.lock:
            self.radicale.proxy.state.faults.clear()

    def _inject(self, name: str, fault: dict[str, Any]) -> None:
        """The provider of the calendar has a bad moment during the next sync."""
        self.figures.faults += 1
        cal = self.cals[name]
        kind, times = fault["kind"], int(fault["times"])
        provider = type(cal.driver).__name__.removesuffix("Driver").lower()
        # Throttled or unavailable: every provider answers both (Graph's 503 and CalDAV's
        # 429 were missing), by the fault's count so that a replay picks the same.
        status = 429 if times % 2 else 503
        label = f"{provider} {kind if kind != 'transient' else status}"
        self.figures.fault_kinds[label] = self.figures.fault_kinds.get(label, 0) + 1
        if kind == "expire":
            cal.driver.expire_cursor(cal.provider_id)
            return
        if isinstance(cal.driver, CalDAVDriver):
            if kind == "timeout":
                self.radicale.proxy.stall_next(times=times)
            elif kind == "drop":
                self.radicale.proxy.drop_next(times=times)
            else:
                after = int(fault["after"])
                self.radicale.proxy.fail_next(status, times=times, retry_after=after)
            return
        body: dict[str, Any] = {"method": "*", "times": times}
        if kind == "timeout":
            # Answered after calsync gave up: a write the provider made and calsync never
            # heard the answer of (Graph's too, now that its client takes TIMEOUT_S).
            body.update(status=200, delay_ms=int(TIMEOUT_S * 1000) + 500)
        elif kind == "drop":
            body.update(status=500, drop_connection=True)
        else:
            body.update(status=status, reason="rateLimitExceeded" if status == 429 else None)
            if fault["after"]:
                body["retry_after"] = int(fault["after"])
        admin = self.graph_admin if isinstance(cal.driver, MicrosoftDriver) else self.world.admin
        answer = admin.post(
            "/emulator/faults", json={k: v for k, v in body.items() if v is not None}
        )
        assert answer.status_code == 201, answer.text

    # -- the steps ------------------------------------------------------------------------------

    def run(self, step: dict[str, Any]) -> None:
        self.steps.append(step)
        getattr(self, f"_do_{step['op']}")(step)

    def _do_begin(self, step: dict[str, Any]) -> None:
        """The walk's first step names the day its days count from (play() read it first)."""
        assert datetime.fromisoformat(step["base"]) == self.base, (step["base"], self.base)

    def _do_morning(self, step: dict[str, Any]) -> None:
        self.clock.set(self.base + timedelta(days=step["day"], hours=5))
        self._day_calls = 0
        for name, cal in self.cals.items():
            if cal.enabled and cal.reachable:
                self._sync(name, full=True, kind=SyncKind.FULL)
        self.unseen.clear()
        self.check(step["day"], "after the safety net")

    def _do_evening(self, step: dict[str, Any]) -> None:
        self.clock.set(self.base + timedelta(days=step["day"], hours=21))
        self._clear_faults()
        todo = [name for name, cal in self.cals.items() if cal.enabled and cal.reachable]
        # The queue runs a failed job again (a slow machine's timeout is a fault like any).
        for attempt in range(3):
            failed = []
            for name in todo:
                fault = self.poll_faults.pop(name, None) if attempt == 0 else None
                if fault is not None:
                    self._inject(name, fault)
                if not self._sync(name):
                    failed.append(name)
            todo = failed
        self.poll_faults.clear()
        self.figures.days += 1
        self.figures.calls_per_day.append(self._day_calls)
        midnight = self.base + timedelta(days=step["day"])
        for zone in ZONES:
            if (
                midnight.astimezone(zone).utcoffset()
                != (midnight + timedelta(days=1)).astimezone(zone).utcoffset()
            ):
                self.figures.dst_changes.append(f"{zone.key} {midnight.date()}")
        self.check(step["day"], "in the evening")
        budget = BUDGET_BASE + BUDGET_PER_CHANGE * step.get("changes", 0)
        if self._day_calls > budget:
            raise SeasonFailure(
                f"day {step['day']}: {self._day_calls} provider requests, over the budget of "
                f"{budget} ({step.get('changes', 0)} changes)"
            )

    def _at(self, step: dict[str, Any]) -> None:
        self.clock.set(datetime.fromisoformat(step["at"]))

    @staticmethod
    def _person(driver: Driver, call: Callable[[], Any]) -> Any:
        """The person's own request; once more on a fresh connection when the kept one was
        closed by the server while idle (a dropped keep-alive is no fault of calsync's)."""
        try:
            return call()
        except ConnectionError:
            if isinstance(driver, GoogleDriver):
                driver._services.clear()
            return call()

    def _changed(self, name: str, step: dict[str, Any]) -> None:
        """The person changed the calendar: its provider notifies calsync (CalDAV has no push:
        polled in the evening), unless the notification is lost."""
        self.figures.changes += 1
        cal = self.cals[name]
        if isinstance(cal.driver, CalDAVDriver) and step.get("fault"):
            self.poll_faults[name] = step["fault"]
        if isinstance(cal.driver, CalDAVDriver) or not (cal.enabled and cal.reachable):
            return
        if not step.get("notify", True):
            self.figures.lost_notifications += 1
            return
        if step.get("fault"):
            self._inject(name, step["fault"])
        self._sync(name)

    def _do_add(self, step: dict[str, Any]) -> None:
        self._at(step)
        self._changed(self._add_event(step), step)

    def _add_event(self, step: dict[str, Any]) -> str:
        """The person adds the step's event (no sync yet); the calendar's name."""
        name: str = step["cal"]
        cal = self.cals[name]
        start, end = _time(step["start"]), _time(step["end"])
        zoned = step.get("zoned")
        if isinstance(start, datetime) and isinstance(end, datetime) and zoned:
            # A series on a zone's clock keeps its local time across that zone's DST change
            # (True: Berlin's, as the walks saved before New York's named it).
            zone = BERLIN if zoned is True else ZoneInfo(zoned)
            start, end = start.astimezone(zone), end.astimezone(zone)
        event = PersonEvent(
            step["title"],
            start,
            end,
            free=step.get("free", False),
            declined=step.get("declined", False),
            tentative=step.get("tentative", False),
            recurrence=step.get("rrule"),
        )
        made = self._person(cal.driver, lambda: cal.driver.add(cal.provider_id, event))
        occurrences: list[datetime] = []
        if step.get("rrule") and isinstance(start, datetime):
            every = 7 if "WEEKLY" in step["rrule"] else 1
            count = int(step["rrule"].rsplit("=", 1)[1])
            occurrences = [start + timedelta(days=every * k) for k in range(count)]
        handle = step["handle"]
        timed = isinstance(start, datetime) and isinstance(end, datetime)
        self.events[handle] = EventState(
            handle,
            name,
            made,
            bool(step.get("rrule")),
            occurrences,
            timed,
            (start, end) if timed and not step.get("rrule") else None,  # type: ignore[arg-type]
        )
        self.flags[handle] = Flags(free=event.free, declined=event.declined)
        return name

    def _event(self, step: dict[str, Any]) -> EventState | None:
        return self.events.get(step["handle"])

    def _do_move(self, step: dict[str, Any]) -> None:
        self._at(step)
        if (event := self._event(step)) is None:
            return
        cal = self.cals[event.calendar]
        start, end = _time(step["start"]), _time(step["end"])
        assert isinstance(start, datetime)
        assert isinstance(end, datetime)
        self._person(
            cal.driver, lambda: cal.driver.move(cal.provider_id, event.provider_id, start, end)
        )
        horizon = self.clock.now() + timedelta(days=HORIZON_DAYS - 1)
        if isinstance(cal.driver, GoogleDriver) and event.span and start >= horizon:
            # Google's sync token keeps the window of the listing that gave it, and its feed
            # says nothing of an event moved out of it (as the emulator models it): calsync
            # learns of the move at the next full reconcile, the daily safety net.
            self.unseen.append(event.span)
        event.span = (start, end)
        self._changed(event.calendar, step)

    def _do_retitle(self, step: dict[str, Any]) -> None:
        self._at(step)
        if (event := self._event(step)) is None:
            return
        cal = self.cals[event.calendar]
        self._person(
            cal.driver,
            lambda: cal.driver.retitle(cal.provider_id, event.provider_id, step["title"]),
        )
        self._changed(event.calendar, step)

    def _do_delete(self, step: dict[str, Any]) -> None:
        self._at(step)
        if (event := self.events.pop(step["handle"], None)) is None:
            return
        cal = self.cals[event.calendar]
        self._person(cal.driver, lambda: cal.driver.delete(cal.provider_id, event.provider_id))
        self._changed(event.calendar, step)

    def _do_occurrence(self, step: dict[str, Any]) -> None:
        """Cancel one occurrence of a series, or move it (an exception)."""
        self._at(step)
        if (event := self._event(step)) is None:
            return
        original = datetime.fromisoformat(step["occ"])
        if original not in event.occurrences:
            return
        event.occurrences.remove(original)  # touched once only: its start is its name
        cal = self.cals[event.calendar]
        zone = event.occurrences[0].tzinfo if event.occurrences else UTC
        when = original.astimezone(zone)
        if step.get("start"):
            start, end = _time(step["start"]), _time(step["end"])
            assert isinstance(start, datetime)
            assert isinstance(end, datetime)
            self._person(
                cal.driver,
                lambda: cal.driver.move_occurrence(
                    cal.provider_id, event.provider_id, when, start, end
                ),
            )
        else:
            self._person(
                cal.driver,
                lambda: cal.driver.cancel_occurrence(cal.provider_id, event.provider_id, when),
            )
        self._changed(event.calendar, step)

    def _do_hand(self, step: dict[str, Any]) -> None:
        """The person moves, retitles or deletes by hand the block of a single event of theirs
        in a target, and the target's notification (CalDAV: its poll, come at once) tells
        calsync. calsync leaves a moved or retitled block as the person made it from then on,
        and does not make a deleted one again while its source is unchanged (domain.md); the
        oracle checks both (HandEdit) until the target stops being one. The sync comes at
        once because calsync writes a block without a condition on its version: a source's
        change synced before calsync read the edit would overwrite it unseen."""
        self._at(step)
        name, handle = step["cal"], step["handle"]
        cal, event = self.cals[name], self.events.get(step["handle"])
        if event is None or event.span is None or (name, handle) in self.hand:
            return
        if not cal.is_target or cal.merge or cal.working_hours:
            return
        start, end = event.span
        held = read(cal.driver, cal.provider_id, *self.read_range)
        found = [i for i in held if i.mark and i.start == start and i.end == end]
        twins = [e for h, e in self.events.items() if h != handle and e.span == event.span]
        if len(found) != 1 or twins:
            return  # no block of the event's own to pick out (not synced yet, or a twin's)
        block, edit = found[0], step["edit"]
        if edit == "delete":
            self._person(cal.driver, lambda: cal.driver.delete(cal.provider_id, block.id))
            span = (block.title, start, end)
        elif edit == "move":
            shift = timedelta(minutes=step["shift"])
            moved = (start + shift, end + shift)
            self._person(cal.driver, lambda: cal.driver.move(cal.provider_id, block.id, *moved))
            span = (block.title, *moved)
        else:
            title = step["title"]
            self._person(cal.driver, lambda: cal.driver.retitle(cal.provider_id, block.id, title))
            span = (title, start, end)
        kind = "deleted" if edit == "delete" else "modified"
        self.hand[(name, handle)] = HandEdit(kind, span, event.calendar)
        self.figures.hand_edits[edit] = self.figures.hand_edits.get(edit, 0) + 1
        self.figures.changes += 1
        self._sync(name)

    def _do_set(self, step: dict[str, Any]) -> None:
        self._at(step)
        if self.cals[step["cal"]].reachable:
            self._apply(step["cal"], step["changes"])

    def _do_disconnect(self, step: dict[str, Any]) -> None:
        """The user disconnects the account (as the API does), then signs it in again and turns
        its calendars on with the settings they had."""
        self._at(step)
        account = step["account"]
        names = self.accounts[account]
        if not all(self.cals[n].reachable for n in names):
            return
        self.figures.disconnects += 1
        # The account's blocks go everywhere, the hand-edited ones too (its rows with them).
        self.hand = {
            k: v for k, v in self.hand.items() if k[0] not in names and v.source not in names
        }
        report = disconnect_account(
            self.runtime, self.world.user(self.cals[names[0]].user), self._account_id(names[0])
        )
        assert report is not None
        settings = {n: (self.cals[n].enabled, self.cals[n].role) for n in names}
        for name in names:
            self.cals[name].enabled = False
        # Mid-day, other calendars may hold changes calsync has not seen yet (a lost
        # notification, CalDAV's poll to come): here only the leaving calendars are checked,
        # which must hold no block; the evening checks everything.
        self.check(step["day"], f"after {account} was disconnected", only=names)
        driver = self.cals[names[0]].driver
        if isinstance(driver, MicrosoftDriver):
            driver.sign_in_again()  # the disconnect revoked the grant
        self._connect(account)
        for name in names:
            was_on, _role = settings[name]
            self._apply(name, {"enabled": was_on})

    @contextmanager
    def _server_syncing(self, step: dict[str, Any]) -> Iterator[serve_at.Serving | None]:
        """The person adds the step's events to its calendar; their notifications queue its
        sync (a full pass with ``full``), which a real `calsync serve` on this database claims
        (serve_at.py: on the walk's clock); the block runs once ``writes`` block writes of the
        server's began (each Google and Graph write slowed) or its job is over. None when the
        calendar is not synced (the person's changes only)."""
        self._at(step)
        name = step["cal"]
        for add in step["adds"]:
            self._add_event(add)
            self.figures.changes += 1
        cal = self.cals[name]
        if not (cal.enabled and cal.reachable):
            yield None
            return
        kind = SyncKind.FULL if step.get("full") else SyncKind.WEBHOOK
        queued = self.runtime.queue.enqueue(self.ids[name], kind, full=kind is SyncKind.FULL)
        before = self._calls()
        self._slow_writes()
        began = self._writes()
        log = self.world.settings.home.parent / "serve.log"
        try:
            with serve_at.serving(self.clock.now(), self.world.settings, log) as server:
                server.job_id = queued.job_id

                def writing_or_over() -> bool:
                    server.check_alive()
                    return self._writes() - began >= step["writes"] or not self._pending(
                        server.job_id
                    )

                wait_until(writing_or_over, timeout=60, what="calsync serve writing blocks")
                server.mid_sync = self._job(server.job_id) == JobState.RUNNING
                yield server
        finally:
            self._day_calls += self._calls() - before
            self._clear_faults()
        # The server's clock ticked on meanwhile: the walk's goes a moment past it.
        self.clock.set(self.clock.now() + timedelta(minutes=5))

    def _do_kill(self, step: dict[str, Any]) -> None:
        """`calsync serve` killed by SIGKILL while it writes the blocks of the person's new
        events (`_server_syncing`). A server started again a moment later takes the dead
        one's job back at once (`JobQueue.reclaim_orphans`, as `Runtime.start` does) and its
        worker runs it: the job ends done and no block is there twice, then or in the
        evening."""
        with self._server_syncing(step) as server:
            if server is None:
                return
            server.process.kill()
            server.process.wait(timeout=30)
            # Read once it is dead: the job may have ended between the last look and the kill.
            server.mid_sync = self._job(server.job_id) == JobState.RUNNING
        self.figures.kills += 1
        self.figures.kills_mid_sync += server.mid_sync
        reclaimed = self.runtime.queue.reclaim_orphans(self.runtime.host, pid_alive)
        assert reclaimed >= server.mid_sync, "the killed server's job was not taken back"
        self._drain()
        state = self._job(server.job_id)
        assert state == JobState.DONE, f"the killed server's job ended {state}"
        self._no_duplicates(step["day"], "after calsync serve was killed mid-sync")

    def _do_outage(self, step: dict[str, Any]) -> None:
        """The database goes away for ``down`` seconds (PostgreSQL stopped at once, as a
        machine losing it) while `calsync serve` writes the blocks of the person's new events
        (`_server_syncing`), and comes back. The server must live through it (not ready
        meanwhile, /readyz says why) and finish the job by itself once the database is back:
        its worker puts the job back and runs it again; nothing lost, no block twice."""
        cluster = self.cluster
        if cluster is None:
            # Replayed on SQLite (a shrink): no database server to lose; the person's changes
            # and their notifications' sync, so that the steps after find the same events.
            self._at(step)
            for add in step["adds"]:
                self._add_event(add)
                self.figures.changes += 1
            if self.cals[step["cal"]].enabled and self.cals[step["cal"]].reachable:
                self._sync(step["cal"])
            return
        with self._server_syncing(step) as server:
            if server is None:
                return
            self.figures.database_outages += 1
            self.figures.outages_mid_sync += server.mid_sync
            cluster.stop()
            try:
                ready = server.readiness()
                assert ready == 503, f"/readyz answered {ready} with the database away"
                threading.Event().wait(step["down"])  # the outage's length: nothing to wait on
            finally:
                cluster.start()
            self._clear_faults()  # the writes at their usual pace again
            wait_until(
                lambda: server.check_alive() and not self._pending(server.job_id),
                timeout=90,
                what="the server finishing its job once the database was back",
            )
            code = server.stop()
            assert code == 0, f"calsync serve stopped with {code}:\n{server.output()}"
        state = self._job(server.job_id)
        assert state == JobState.DONE, f"the job the outage interrupted ended {state}"
        self._no_duplicates(step["day"], "after the database came back")

    def _pending(self, job_id: int) -> bool:
        return self._job(job_id) in (JobState.QUEUED, JobState.RUNNING)

    def _writes(self) -> int:
        """Block writes that reached the providers so far (begun: counted as they arrive)."""
        google = self.world.admin.get("/emulator/stats").json()["calls"]
        graph = self.graph_admin.get("/emulator/stats").json()["calls"]
        puts = sum(1 for method, _ in self.radicale.proxy.requests() if method == "PUT")
        return int(google.get("events.insert", 0)) + int(graph.get("events.create", 0)) + puts

    def _slow_writes(self) -> None:
        for admin, method in (
            (self.world.admin, "events.insert"),
            (self.graph_admin, "events.create"),
        ):
            answer = admin.post(
                "/emulator/faults",
                json={"method": method, "status": 200, "times": 10**5, "delay_ms": SLOW_WRITE_MS},
            )
            assert answer.status_code == 201, answer.text

    def _job(self, job_id: int) -> JobState:
        with Session(self.world.db) as session:
            job = session.get(SyncJob, job_id)
            assert job is not None
            return JobState(job.state)

    def _drain(self) -> None:
        """A worker of the restarted server: claims and runs every due job; a job queued
        again with a backoff waits for it (the clock moved on, a few times at most)."""
        queue, worker = self.runtime.queue, f"{self.runtime.worker_name}-w0"
        for _ in range(4):
            while (job := queue.claim(worker)) is not None:
                before = self._calls()
                try:
                    result = run_job(queue, self.engine, job)
                finally:
                    self._day_calls += self._calls() - before
                self.figures.syncs += 1
                ok = result is not None and result.log.status == SyncStatus.SUCCESS
                self.figures.failed_syncs += not ok
            with Session(self.world.db) as session:
                waiting = session.exec(
                    select(SyncJob.run_after).where(SyncJob.state == JobState.QUEUED)
                ).all()
            if not waiting:
                return
            self.clock.set(max(self.clock.now(), min(_aware(w) for w in waiting)))

    def _no_duplicates(self, day: int, when: str) -> None:
        """No calendar holds two blocks of one source (read back from the providers)."""
        now = self.clock.now()
        problems = []
        for name, cal in self.cals.items():
            if not cal.reachable:
                continue
            held = read(cal.driver, cal.provider_id, *self.read_range)
            marks = [i.mark for i in held if i.mark and _ends_after(i, now)]
            if len(marks) != len(set(marks)):
                problems.append(f"{name}: two blocks of one source {sorted(marks)}")
        if problems:
            raise SeasonFailure(f"day {day} {when}:\n  " + "\n  ".join(problems))

    def _do_refuse(self, step: dict[str, Any]) -> None:
        """The account's login stops working; its calendars' syncs find out."""
        self._at(step)
        account = step["account"]
        names = self.accounts[account]
        if not all(self.cals[n].reachable for n in names):
            return
        self.cals[names[0]].driver.refuse_login()
        self.figures.refusals += 1
        synced = False
        for name in names:
            if self.cals[name].enabled:
                assert not self._sync(name), f"{name}: a refused login synced"
                synced = True
            # Its calendars off too: the person's own hands there wait for the new login.
            self.cals[name].reachable = False
        if not synced:
            return  # nothing of calsync's met the refusal yet
        with Session(self.world.db) as session:
            account_row = session.get(Account, self._account_id(names[0]))
            assert account_row is not None
            assert account_row.state == AccountState.NEEDS_REAUTH, account_row.state

    def _do_fix(self, step: dict[str, Any]) -> None:
        """The person signs in again: the account picks up with a full pass of each calendar."""
        self._at(step)
        account = step["account"]
        names = self.accounts[account]
        if all(self.cals[n].reachable for n in names):
            return
        driver = self.cals[names[0]].driver
        if isinstance(driver, MicrosoftDriver):
            driver.sign_in_again()
        else:
            with self.radicale.proxy.lock:
                self.radicale.proxy.state.refuse_login = False
        self._connect(account)
        for name in names:
            self.cals[name].reachable = True
            if self.cals[name].enabled:
                self._sync(name, full=True, kind=SyncKind.MANUAL)

    # -- the check ------------------------------------------------------------------------------

    def check(self, day: int, when: str, *, only: list[str] | None = None) -> None:
        now = self.clock.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        window = (today - timedelta(days=1), today + timedelta(days=HORIZON_DAYS))
        horizon = window[1]
        held = {
            name: read(cal.driver, cal.provider_id, *self.read_range)
            for name, cal in self.cals.items()
        }
        problems: list[str] = []
        sources = [(self.cals[n], held[n]) for n in self.cals]
        for name, cal in self.cals.items():
            if not cal.reachable or (only is not None and name not in only):
                continue  # a refused login: its blocks stay as they were (domain.md)
            marks = [i.mark for i in held[name] if i.mark and _ends_after(i, now)]
            if len(marks) != len(set(marks)):
                problems.append(f"{name}: two blocks of one source {sorted(marks)}")
            hand = {h: e for (t, h), e in self.hand.items() if t == name}
            still_deleted: set[str] = set()
            expected = (
                expected_blocks(cal, sources, self.flags, (today, window[1]), hand, still_deleted)
                if cal.is_target
                else []
            )
            expected += [e.span for e in hand.values() if e.kind == "modified"]
            for handle, edit in hand.items():
                if edit.kind == "deleted" and handle not in still_deleted:
                    # Its source changed what the block would show, or no longer asks for one:
                    # calsync forgot the deletion (a fresh block, or none).
                    del self.hand[(name, handle)]
            missing, extra = compare(expected, held[name], now, horizon)
            for span in list(extra):
                if not isinstance(span[1], datetime) or not isinstance(span[2], datetime):
                    continue
                if any(low <= span[1] and span[2] <= high for low, high in self.unseen):
                    del extra[span]
                elif cal.merge and any(
                    low < span[2] and span[1] < high for low, high in self.unseen
                ):
                    # A merged block joining such an old time with a neighbour calsync did
                    # see stays whole until the safety net too: the neighbour's block it
                    # stands for is not missing (seed 90, day 71).
                    del extra[span]
                    for block in list(missing):
                        if (
                            isinstance(block[1], datetime)
                            and span[1] <= block[1] < block[2] <= span[2]
                        ):
                            del missing[block]
            if missing:
                problems.append(f"{name}: missing {sorted(missing.elements(), key=str)}")
            if extra:
                problems.append(f"{name}: unexpected {sorted(extra.elements(), key=str)}")
            if cal.user == "ada" and any("u2-" in i.title for i in held[name] if i.mark):
                problems.append(f"{name}: holds a block of the other user")
        if only is None:
            problems += self._database_agrees(held, now)
        if problems:
            raise SeasonFailure(f"day {day} {when}:\n  " + "\n  ".join(problems))

    def _database_agrees(self, held: dict[str, list[Instance]], now: datetime) -> list[str]:
        """calsync's rows name exactly the blocks the providers hold (future ones), and no row
        joins two users."""
        problems = []
        with Session(self.world.db) as session:
            users = {
                c.id: a.user_id
                for c, a in session.exec(
                    select(Calendar, Account).where(Calendar.account_id == Account.id)
                )
            }
            rows = list(session.exec(select(BusyBlock)))
        for row in rows:
            if users.get(row.source_calendar_id) != users.get(row.target_calendar_id):
                problems.append(f"a block row joins two users: {row.id}")
        for name, cal in self.cals.items():
            if not cal.reachable or name not in self.ids:
                continue
            stored = {
                _name(r.provider_event_id)
                for r in rows
                if r.target_calendar_id == self.ids[name]
                and not r.user_deleted
                and (r.end_at is None or _aware(r.end_at) > now)
            }
            there = {_name(i.id) for i in held[name] if i.mark and _ends_after(i, now)}
            if stored != there:
                problems.append(
                    f"{name}: database and provider differ: only stored {sorted(stored - there)}, "
                    f"only at the provider {sorted(there - stored)}"
                )
        return problems


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _name(provider_id: str) -> str:
    return provider_id.rstrip("/").rsplit("/", 1)[-1]


def _ends_after(instance: Instance, now: datetime) -> bool:
    end = instance.end
    if not isinstance(end, datetime):
        end = datetime.combine(end, datetime.min.time(), UTC)
    return end > now


# -- the walk ------------------------------------------------------------------------------------


class Walk:
    """Makes a season's steps from a seed, one day at a time, from what the model holds."""

    def __init__(self, season: Season, seed: int, *, faults: bool) -> None:
        self.season = season
        self.rng = random.Random(seed)
        self.faults = faults
        # The providers whose bad moments the walk has made so far (see _first_fault).
        self.faulted: set[type[Driver]] = set()

    def day(self, day: int) -> Iterator[dict[str, Any]]:
        rng, season = self.rng, self.season
        yield {"op": "morning", "day": day}
        changes = 0
        if day == 0:
            for series in self._across_dst():
                changes += 1
                yield series
        hour = 8.0
        refused: str | None = None
        forced = FORCED.get(day)
        hand_edit = FORCED_HAND.get(day)
        for n in range(rng.randint(3, 7)):
            hour += rng.uniform(0.3, 1.5)
            # The day's forced hand edit, as soon as an event of Ada's has a block to edit.
            if hand_edit is not None and (hand := self._hand(day, hour - 0.1, hand_edit)):
                hand_edit = None
                changes += 1
                yield hand
            step = self._change(day, hour)
            if step is None:
                continue
            self._first_fault(step)
            changes += step["op"] in ("add", "move", "retitle", "delete", "occurrence", "hand")
            yield step
            refuse = forced is not None and forced[0] == "refuse" and n == 1
            if refused is None and (refuse or rng.random() < 0.04):
                refused = (
                    forced[1] if refuse and forced else rng.choice(["ada-microsoft", "caldav"])
                )
                yield {"op": "refuse", "day": day, "account": refused, "at": self._at(day, hour)}
        if refused is not None:
            yield {"op": "fix", "day": day, "account": refused, "at": self._at(day, 20)}
        if (
            season.cluster is not None
            and self.faults
            and (day == FORCED_OUTAGE_DAY or rng.random() < OUTAGE_RATE)
        ):
            outage = self._burst(day, 19.5, "outage")
            if outage is not None:
                outage.update(down=round(rng.uniform(1.0, 3.0), 1), full=rng.random() < 0.3)
                changes += len(outage["adds"])
                yield outage
        disconnect = forced is not None and forced[0] == "disconnect"
        if disconnect or rng.random() < 0.03:
            account = (
                forced[1] if forced and disconnect else rng.choice(["ada-microsoft", "caldav"])
            )
            yield {"op": "disconnect", "day": day, "account": account, "at": self._at(day, 20.5)}
        if self.faults and (day == FORCED_KILL_DAY or rng.random() < KILL_RATE):
            kill = self._burst(day, 20.75, "kill")
            if kill is not None:
                changes += len(kill["adds"])
                yield kill
        yield {"op": "evening", "day": day, "changes": changes}

    def _across_dst(self) -> Iterator[dict[str, Any]]:
        """Day 0's two weekly series across both changes of the clocks whatever the seed: a
        09:00 meeting on New York's clock in Outlook (its first notification's sync meets a
        Graph timeout) past the US's change, and a 19:00 one on Berlin's clock in Personal
        past the EU's; each occurrence's blocks must move an hour in UTC with its zone."""
        season = self.season
        for name, zone, local, weeks in (
            ("Outlook", NEW_YORK, 9, 4),
            ("Personal", BERLIN, 19, 5),
        ):
            season.handles += 1
            handle = f"u1-e{season.handles}"
            day = (season.base + timedelta(days=1)).date()
            start = datetime.combine(day, datetime.min.time().replace(hour=local), zone)
            step: dict[str, Any] = {
                "op": "add",
                "cal": name,
                "handle": handle,
                "title": f"{handle} Planning",
                "day": 0,
                "at": self._at(0, 7.5),
                "start": _iso(start.astimezone(UTC)),
                "end": _iso((start + timedelta(hours=1)).astimezone(UTC)),
                "rrule": f"FREQ=WEEKLY;COUNT={weeks}",
                "zoned": zone.key,
            }
            if self.faults and name == "Outlook":
                step["fault"] = {"kind": "timeout", "times": 1, "after": 0}
                self.faulted.add(MicrosoftDriver)
            yield step

    def _first_fault(self, step: dict[str, Any]) -> None:
        """A provider's first change that is notified (polled, for CalDAV) meets the fault
        the walk had none of until Graph's client took calsync's timeout and CalDAV's
        faults reached its poll: a Graph timeout, a CalDAV 429 with Retry-After, whatever
        the seed (the suite's short walk sees both). No draw of the seed's: the rest of the
        walk is the same."""
        changes = ("add", "move", "retitle", "delete", "occurrence")
        if not self.faults or step["op"] not in changes or step.get("notify", True) is False:
            return
        name = step.get("cal") or self.season.events[step["handle"]].calendar
        cal = self.season.cals[name]
        kind = type(cal.driver)
        if kind in self.faulted or not (cal.enabled and cal.reachable):
            return
        self.faulted.add(kind)
        if kind is MicrosoftDriver:
            step["fault"] = {"kind": "timeout", "times": 1, "after": 0}
        elif kind is CalDAVDriver:
            step["fault"] = {"kind": "transient", "times": 1, "after": 1}

    def _burst(self, day: int, hour: float, op: str) -> dict[str, Any] | None:
        """A few timed events in one of Ada's source calendars, then the fault that strikes
        the server syncing them (Season._do_kill, _do_outage) after 1-4 block writes."""
        rng, season = self.rng, self.season
        names = [n for n, c in season.cals.items() if c.user == "ada" and c.is_source]
        if not names:
            return None
        name = rng.choice(names)
        at = self._at(day, hour)
        adds = []
        for _ in range(rng.randint(3, 5)):
            season.handles += 1
            handle = f"u1-e{season.handles}"
            start = season.base + timedelta(
                days=day + rng.randint(1, 14),
                hours=rng.randint(7, 19),
                minutes=rng.choice([0, 30]),
            )
            adds.append(
                {
                    "op": "add",
                    "cal": name,
                    "handle": handle,
                    "title": f"{handle} {rng.choice(WORDS)}",
                    "day": day,
                    "at": at,
                    "start": _iso(start),
                    "end": _iso(start + timedelta(minutes=rng.choice([30, 60]))),
                }
            )
        return {
            "op": op,
            "day": day,
            "cal": name,
            "adds": adds,
            "writes": rng.randint(1, 4),
            "at": at,
        }

    def _at(self, day: int, hour: float) -> str:
        return _iso(self.season.base + timedelta(days=day, hours=hour))

    def _change(self, day: int, hour: float) -> dict[str, Any] | None:
        rng, season = self.rng, self.season
        at = self._at(day, hour)
        user = "bob" if rng.random() < 0.2 else "ada"
        # While an account's login is refused, the person's own hands there are idle too.
        names = [n for n, c in season.cals.items() if c.user == user and c.reachable]
        mine = [h for h, e in season.events.items() if e.calendar in names]
        common: dict[str, Any] = {"day": day, "at": at}
        if rng.random() < 0.12:
            common["notify"] = False
        elif self.faults and rng.random() < 0.35:
            kind = rng.choice(["transient", "transient", "drop", "timeout", "expire", "burst"])
            times = rng.randint(5, 6) if kind == "burst" else rng.randint(1, 2)
            after = 1 if kind == "transient" and rng.random() < 0.2 else 0
            common["fault"] = {
                "kind": "transient" if kind == "burst" else kind,
                "times": times,
                "after": after,
            }
        if user == "ada" and rng.random() < 0.06 and (hand := self._hand(day, hour)):
            return hand
        roll = rng.random()
        if roll < 0.08 and user == "ada":
            name = rng.choice(names)
            changes = self._setting()
            if any(t == name for t, _ in season.hand) and (
                changes.get("merge") or changes.get("working_hours")
            ):
                # A target holding a hand-edited block keeps its blocks one per event (the
                # oracle's HandEdit): no merging or working hours there.
                changes = {"exclude": []}
            return {"op": "set", "cal": name, "changes": changes, **common}
        if roll < 0.45 or not mine:
            return self._add(user, rng.choice(names), day, common)
        handle = rng.choice(mine)
        event = season.events[handle]
        if event.recurring and event.occurrences and roll < 0.7:
            occ = rng.choice(event.occurrences)
            step = {"op": "occurrence", "handle": handle, "occ": _iso(occ), **common}
            if rng.random() < 0.5:
                start = occ + timedelta(hours=rng.choice([-3, -1, 1, 2, 5]))
                step.update(start=_iso(start), end=_iso(start + timedelta(minutes=45)))
            return step
        if roll < 0.62 and event.timed and not event.recurring:
            start = self._when(day)
            length = timedelta(minutes=rng.choice([30, 60, 90, 120]))
            return {
                "op": "move",
                "handle": handle,
                "start": _iso(start),
                "end": _iso(start + length),
                **common,
            }
        if roll < 0.8:
            title = f"{handle} {rng.choice(WORDS)}"
            return {"op": "retitle", "handle": handle, "title": title, **common}
        return {"op": "delete", "handle": handle, **common}

    def _hand(self, day: int, hour: float, forced: str | None = None) -> dict[str, Any] | None:
        """The person edits by hand the block of a single timed event of Ada's (a day ahead
        at least) in another of her targets that neither merges nor keeps working hours;
        ``forced``: that edit, of the first such event and target, with no draw of the seed's."""
        rng, season = self.rng, self.season
        soon = season.base + timedelta(days=day + 1, hours=hour)
        events = sorted(
            h
            for h, e in season.events.items()
            if not e.recurring
            and e.span is not None
            and e.span[0] > soon
            and season.cals[e.calendar].user == "ada"
            and season.cals[e.calendar].is_source
        )
        targets = [
            n
            for n, c in season.cals.items()
            if c.user == "ada" and c.is_target and not c.merge and not c.working_hours
        ]
        if forced is not None:
            pairs = [
                (h, n)
                for h in events
                for n in targets
                if n != season.events[h].calendar and (n, h) not in season.hand
            ]
            if not pairs:
                return None
            handle, name = pairs[0]
        else:
            if not events or not targets:
                return None
            handle, name = rng.choice(events), rng.choice(targets)
            if name == season.events[handle].calendar or (name, handle) in season.hand:
                return None
        return {
            "op": "hand",
            "cal": name,
            "handle": handle,
            "edit": forced or rng.choice(["move", "retitle", "delete"]),
            "shift": 90 if forced else rng.choice([-60, 30, 90]),
            "title": "Held by hand",
            "day": day,
            "at": self._at(day, hour),
        }

    def _when(self, day: int) -> datetime:
        rng = self.rng
        # Mostly the next two weeks; now and then beyond the horizon, to slide into the window.
        ahead = rng.randint(0, 14) if rng.random() < 0.9 else rng.randint(80, 100)
        return self.season.base + timedelta(
            days=day + ahead, hours=rng.randint(6, 20), minutes=rng.choice([0, 30])
        )

    def _add(self, user: str, name: str, day: int, common: dict[str, Any]) -> dict[str, Any]:
        rng, season = self.rng, self.season
        season.handles += 1
        handle = f"u{1 if user == 'ada' else 2}-e{season.handles}"
        title = f"{handle} {rng.choice(WORDS)}"
        step: dict[str, Any] = {
            "op": "add",
            "cal": name,
            "handle": handle,
            "title": title,
            **common,
        }
        kind = rng.random()
        if kind < 0.12:
            first = (season.base + timedelta(days=day + rng.randint(0, 10))).date()
            step.update(start=_iso(first), end=_iso(first + timedelta(days=rng.randint(1, 3))))
            return step
        start = self._when(day)
        step.update(
            start=_iso(start), end=_iso(start + timedelta(minutes=rng.choice([30, 60, 90])))
        )
        if kind < 0.3:
            freq = rng.choice(["DAILY", "WEEKLY"])
            count = rng.randint(3, 6)
            zoned = rng.choice([False, BERLIN.key, NEW_YORK.key])
            step.update(rrule=f"FREQ={freq};COUNT={count}", zoned=zoned)
        elif kind < 0.38:
            step["free"] = True
        elif kind < 0.46:
            step["declined"] = True
        elif kind < 0.52:
            step["tentative"] = True
        return step

    def _setting(self) -> dict[str, Any]:
        rng, season = self.rng, self.season
        all_day = any(c.include_all_day for c in season.cals.values())
        hours = any(c.working_hours for c in season.cals.values())
        choices: list[Callable[[], dict[str, Any]]] = [
            lambda: {"busy_title": rng.choice(["private", "title"])},
            lambda: {"exclude": rng.choice([[], ["skip"]])},
            lambda: {"merge": rng.random() < 0.5},
            lambda: {"role": rng.choice(["both", "both", "source", "target"])},
            lambda: {"enabled": rng.random() < 0.6},
        ]
        # Working hours cut timed events only: the walk keeps them apart from all-day ones.
        if not hours:
            choices.append(lambda: {"include_all_day": rng.random() < 0.5})
        if not all_day:
            choices.append(
                lambda: {
                    "working_hours": rng.choice([None, OFFICE_HOURS]),
                    "time_zone": rng.choice(ZONES).key,
                }
            )
        return rng.choice(choices)()


@contextmanager
def postgres_cluster() -> Iterator[tuple[Cluster, str] | None]:
    """A throwaway PostgreSQL cluster and a database in it, that the walk may stop; None
    where PostgreSQL's programs are not installed (the walk runs on SQLite, no outages)."""
    initdb = find_bin("initdb")
    if initdb is None:
        yield None
        return
    cluster = Cluster(initdb)
    try:
        cluster.start()
        yield cluster, cluster.create_database("calsync_season")
    finally:
        cluster.remove()


@contextmanager
def providers(
    emulator: RunningEmulator, scratch: Path
) -> Iterator[tuple[RunningEmulator, GraphEndpoints, CalDAVServer]]:
    """Graph's emulator and a Radicale behind the fault proxy, for one season."""
    with ExitStack() as stack:
        running = stack.enter_context(run_graph_emulator(GraphEmulatorConfig()))
        graph = GraphEndpoints(running.url, running.tls_url, str(running.ca_path))
        (scratch / "radicale").mkdir(parents=True, exist_ok=True)
        radicale = stack.enter_context(caldav_server("radicale", scratch / "radicale"))
        yield emulator, graph, radicale


def play(
    emulator: RunningEmulator,
    scratch: Path,
    *,
    seed: int,
    days: int,
    faults: bool,
    database_url: str | None = None,
    cluster: Cluster | None = None,
    steps: list[dict[str, Any]] | None = None,
    base: datetime | None = None,
) -> Season:
    """Walk ``days`` simulated days from ``seed`` (or replay ``steps``); the season's figures.
    A broken invariant raises SeasonFailure naming the seed, with the steps saved beside."""
    started = time.monotonic()
    if base is None:
        # Saved steps name their base in their first step; walks saved before it was named
        # pass theirs (BASE_BEFORE_US_DST).
        begin = steps[0] if steps and steps[0]["op"] == "begin" else None
        base = datetime.fromisoformat(begin["base"]) if begin else BASE
    with providers(emulator, scratch) as (google, graph, radicale):
        url = database_url or f"sqlite:///{scratch / 'calsync.db'}"
        season = Season(
            google,
            graph,
            radicale,
            scratch / "home",
            url,
            faults=faults,
            cluster=cluster,
            base=base,
        )
        try:
            walk = Walk(season, seed, faults=faults)
            todo = (
                steps
                if steps is not None
                else itertools.chain(
                    [{"op": "begin", "base": _iso(base)}],
                    (s for d in range(days) for s in walk.day(d)),
                )
            )
            for step in todo:
                try:
                    season.run(step)
                except Exception as exc:
                    saved = (
                        Path(tempfile.gettempdir()) / f"calsync-season-{seed}-{os.getpid()}.json"
                    )
                    saved.write_bytes(msgspec.json.format(msgspec.json.encode(season.steps)))
                    failure = SeasonFailure(
                        f"seed {seed}, step {len(season.steps)} ({step}): {exc}\n"
                        f"steps so far: {saved} (replay: python -m tests.reliability.soak "
                        f"--replay {saved})"
                    )
                    failure.steps = saved
                    raise failure from exc
        finally:
            season.figures.seconds = time.monotonic() - started
            season.close()
    return season
