"""Providers kept across syncs: a sync takes the provider an earlier sync of the account built,
unless the account's login changed since (then it builds one from the new login) or that sync
failed; and an echo's sync (only calsync's own writes coming back) needs no user's lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlmodel import Session, col, select

from calsync_server.accounts.vault import GoogleOAuth, StoredCredentials
from calsync_server.db.models import Account, Calendar, SyncLog
from calsync_server.providers.google.provider import GoogleProvider
from calsync_server.sync.engine import SyncEngine
from tests.support.waiting import wait_until
from tests.support.world import FAST_RETRY, Cal, World, timed


class _Builds:
    """The real Google providers, and the access token each was built with."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def build(self, credentials: StoredCredentials, root_url: str) -> GoogleProvider:
        assert isinstance(credentials, GoogleOAuth)
        self.tokens.append(credentials.access_token or "")
        return GoogleProvider.from_stored(credentials, root_url=root_url, retry=FAST_RETRY)


def _engine(world: World) -> tuple[SyncEngine, _Builds]:
    builds = _Builds()
    return world.engine_through(builds.build), builds


def _pair(world: World, unique: str) -> tuple[Cal, Cal]:
    work, home = world.work_and_home(unique)
    world.configure(work, home)
    return work, home


def test_a_sync_takes_the_provider_an_earlier_sync_built(world: World, unique: str) -> None:
    work, home = _pair(world, unique)
    engine, builds = _engine(world)
    world.insert(work, **timed("Standup", 9, 10))
    for cal in (work, home, work, home):
        assert engine.sync_calendar(cal.id).report.error is None
    # One provider per account, built once: every later sync took it again.
    assert len(builds.tokens) == 2
    assert [b["summary"] for b in world.blocks(home)] == ["Busy"]


def test_a_login_sealed_anew_is_the_one_the_next_sync_uses(world: World, unique: str) -> None:
    work, _home = _pair(world, unique)
    engine, builds = _engine(world)
    engine.sync_calendar(work.id)
    # The person signs in again: a new access token sealed into the account's row.
    fresh = GoogleOAuth(access_token="a-new-token", refresh_token="a-new-refresh")
    with Session(world.db) as session:
        account = session.exec(select(Account).where(Account.email == work.email)).one()
        account.credentials_encrypted = world.vault.seal(fresh)
        session.add(account)
        session.commit()
    engine.sync_calendar(work.id)
    assert builds.tokens[-1] == "a-new-token"


def test_a_failed_sync_leaves_no_provider_behind(world: World, unique: str) -> None:
    work, _home = _pair(world, unique)
    engine, builds = _engine(world)
    world.fault("events.list", 503, times=20)
    assert engine.sync_calendar(work.id).report.error is not None
    world.admin.delete("/emulator/faults").raise_for_status()
    assert engine.sync_calendar(work.id).report.error is None
    # The work account's provider was built again after the failure (home's once, for the
    # blocks written into it).
    assert builds.tokens.count(builds.tokens[0]) == 2


def test_a_forgotten_account_has_no_provider_kept(world: World, unique: str) -> None:
    work, _home = _pair(world, unique)
    engine, builds = _engine(world)
    engine.sync_calendar(work.id)
    with Session(world.db) as session:
        calendar = session.get(Calendar, work.id)
        assert calendar is not None
        account_id = calendar.account_id
    engine.providers.forget(account_id)
    engine.sync_calendar(work.id)
    assert builds.tokens.count(builds.tokens[0]) == 2  # work's: built again


@contextmanager
def _users_lock_held(world: World, engine: SyncEngine, cal: Cal) -> Iterator[None]:
    with Session(world.db) as session:
        calendar = session.get(Calendar, cal.id)
        assert calendar is not None
        account = session.get(Account, calendar.account_id)
        assert account is not None
        user_id = account.user_id
    with Session(world.db) as session, engine.locks.held(session, user_id):
        yield


def test_an_echo_sync_takes_no_users_lock(world: World, unique: str) -> None:
    work, home = _pair(world, unique)
    engine = world.engine
    world.sync_all(work, home)
    world.insert(work, **timed("Standup", 9, 10))
    engine.sync_calendar(work.id)  # writes the block into home: its echo waits in home's feed
    done = threading.Event()

    def echo_sync() -> None:
        engine.sync_calendar(home.id)
        done.set()

    with _users_lock_held(world, engine, work):
        thread = threading.Thread(target=echo_sync, daemon=True)
        thread.start()
        # The echo needs nothing the lock guards: it ends while another sync holds it.
        wait_until(done.is_set, timeout=10, what="the echo's sync, with the user's lock held")
    thread.join(timeout=10)
    with Session(world.db) as session:
        log = session.exec(
            select(SyncLog).where(SyncLog.calendar_id == home.id).order_by(col(SyncLog.id).desc())
        ).first()
        assert log is not None
        assert log.error is None
        assert log.events_fetched == 1
    assert [b["summary"] for b in world.blocks(home)] == ["Busy"]
