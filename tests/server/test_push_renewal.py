"""Renewal decided by capabilities, the channel keeper driven directly with the Microsoft
provider against the Graph emulator (test_microsoft_push.py does it through the server): a
SUBSCRIPTION is renewed in place at about half-life or when a lifecycle notice asks, and made
anew when renewal says it is gone; a provider without push never gets one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.accounts.vault import CredentialVault
from calsync_server.db.engine import upgrade_database
from calsync_server.db.models import Account, Calendar, PushSubscription
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.providers.microsoft import CAPABILITIES, MicrosoftProvider
from calsync_server.providers.model import Provider, Subscription
from calsync_server.providers.registry import capabilities
from calsync_server.push.channels import ChannelChanges, ChannelKeeper
from shared.clock import FixedClock
from shared.settings import Settings
from tests.support.drivers.microsoft import GraphEndpoints, MicrosoftDriver
from tests.support.push_receiver import PushReceiver, push_receiver
from tests.support.rows import add_calendars


def _now() -> datetime:
    """calsync's fixed clock starts at the Graph emulator's (the real) time when a test starts:
    the lifetimes Graph answers count from then, not from when the module was imported."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def driver() -> Iterator[MicrosoftDriver]:
    config = GraphEmulatorConfig(push_delay_s=0.01, push_retry_base_s=0.05)
    with run_graph_emulator(config) as running:
        made = MicrosoftDriver(GraphEndpoints(running.url, running.tls_url, str(running.ca_path)))
        try:
            yield made
        finally:
            made.close()


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    with push_receiver() as running:
        yield running


def _no_factory(name: str, account_id: int | None, stored: Any) -> Provider:
    raise AssertionError("the test hands the keeper its provider")


def _graph(driver: MicrosoftDriver, calendar: str) -> dict[str, dict[str, Any]]:
    """Graph's subscriptions to this calendar."""
    held = driver.admin.get("/emulator/subscriptions").json()
    return {s["id"]: s for s in held if s["calendar_id"] == calendar}


def _live(db: sa.Engine, calendar_id: int) -> list[PushSubscription]:
    with Session(db) as session:
        return list(
            session.exec(
                select(PushSubscription).where(
                    PushSubscription.calendar_id == calendar_id,
                    PushSubscription.state != "stopped",
                )
            )
        )


def test_a_subscription_is_renewed_in_place_and_made_anew_when_gone(
    db_engine: sa.Engine, driver: MicrosoftDriver, receiver: PushReceiver, tmp_path: Path
) -> None:
    NOW = _now()
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        graph_calendar = driver.new_calendar("Pushed")
        (calendar_id,) = add_calendars(session, graph_calendar)
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        account = session.get(Account, calendar.account_id)
        assert account is not None
        account.provider = "microsoft"  # type: ignore[assignment]
        calendar.sync_enabled = True
        session.add_all([account, calendar])
        session.commit()
        account_id = account.id
    clock = FixedClock(NOW)
    settings = Settings(home=tmp_path, public_url=receiver.url)
    keeper = ChannelKeeper(db_engine, settings, clock, CredentialVault(tmp_path), _no_factory)
    # The provider dates subscriptions by the keeper's clock, as the engine's factory does.
    provider = driver.provider(clock=clock.now)
    calls: list[str] = []

    def opened() -> MicrosoftProvider:
        calls.append("opened")
        return provider

    def keep(at: datetime) -> ChannelChanges:
        changes = ChannelChanges()
        with Session(db_engine, expire_on_commit=False) as session:
            cal = session.get(Calendar, calendar_id)
            owner = session.get(Account, account_id)
            assert cal is not None
            assert owner is not None
            channels = _live(db_engine, calendar_id)
            channels = [session.merge(c) for c in channels]
            assert keeper.keep(session, opened, owner, cal, channels, CAPABILITIES, at, changes)
            session.commit()
        return changes

    try:
        made = keep(NOW)
        assert made.created == [calendar_id]
        (first,) = _live(db_engine, calendar_id)
        assert first.remote_id in _graph(driver, graph_calendar)
        assert first.address == f"{receiver.url.rstrip('/')}/webhooks/microsoft/{first.key}"
        assert first.expires_at is not None
        lifetime = first.expires_at - NOW
        # The week asked for (channel_ttl_seconds), cut to Graph's most for Outlook events.
        assert lifetime == timedelta(minutes=4200)

        # Before half-life: nothing to do, and the provider is not even asked.
        calls.clear()
        assert not keep(NOW + lifetime / 2 - timedelta(minutes=5))
        assert calls == []

        # At half-life: renewed in place (same key, same remote id), nothing new made.
        later = NOW + lifetime / 2 + timedelta(minutes=1)
        renewed = keep(later)
        assert (renewed.renewed, renewed.created, renewed.stopped) == ([calendar_id], [], [])
        (second,) = _live(db_engine, calendar_id)
        assert (second.key, second.remote_id) == (first.key, first.remote_id)
        assert second.renewed_at == later
        assert list(_graph(driver, graph_calendar)) == [first.remote_id]

        # A lifecycle notice asked for renewal (the webhook marks it): renewed at once.
        with Session(db_engine) as session:
            row = session.get(PushSubscription, second.id)
            assert row is not None
            row.renew_requested_at = later
            session.add(row)
            session.commit()
        asked = later + timedelta(minutes=1)
        assert keep(asked).renewed == [calendar_id]
        (third,) = _live(db_engine, calendar_id)
        assert third.renew_requested_at is None
        assert third.renewed_at == asked

        # Gone at Graph: renewal says so, and a new subscription replaces it.
        assert third.remote_id is not None
        provider.unsubscribe(Subscription(third.remote_id, None))
        assert _graph(driver, graph_calendar) == {}
        gone_at = asked + lifetime / 2 + timedelta(minutes=1)
        replaced = keep(gone_at)
        assert replaced.created == [calendar_id]
        assert replaced.stopped == [third.key]
        (fresh,) = _live(db_engine, calendar_id)
        assert fresh.key != third.key
        assert list(_graph(driver, graph_calendar)) == [fresh.remote_id]
    finally:
        provider.close()


def test_a_provider_without_push_never_gets_a_subscription(
    db_engine: sa.Engine, tmp_path: Path
) -> None:
    NOW = _now()
    upgrade_database(db_engine)
    with Session(db_engine, expire_on_commit=False) as session:
        (calendar_id,) = add_calendars(session, "polled")
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        account = session.get(Account, calendar.account_id)
        assert account is not None
        calendar.sync_enabled = True
        settings = Settings(home=tmp_path, public_url="https://calsync.example/")
        keeper = ChannelKeeper(
            db_engine, settings, FixedClock(NOW), CredentialVault(tmp_path), _no_factory
        )

        def never() -> object:
            raise AssertionError("a provider without push is never asked")

        changes = ChannelChanges()
        assert keeper.keep(
            session, never, account, calendar, [], capabilities("caldav"), NOW, changes
        )
        assert not changes
    assert _live(db_engine, calendar_id) == []
