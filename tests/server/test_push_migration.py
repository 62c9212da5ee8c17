"""Migration 0008: every push channel of a database made before neutral push carries over to
push_subscription and keeps working (its notifications are accepted, on either route)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from calsync_server.db.engine import upgrade_database
from calsync_server.db.models import Notification, PushSubscription
from calsync_server.jobs.queue import JobQueue
from calsync_server.providers.model import Notice, PushRequest
from calsync_server.providers.registry import push_parser
from calsync_server.push.webhook_batch import Incoming, record_notifications
from shared.clock import FixedClock
from shared.domain import NotificationOutcome

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _google_notice(channel_id: str, token: str, resource: str, number: int, state: str) -> Notice:
    parser = push_parser("google")
    assert parser is not None
    headers = {
        "x-goog-channel-id": channel_id,
        "x-goog-channel-token": token,
        "x-goog-resource-id": resource,
        "x-goog-resource-state": state,
        "x-goog-message-number": str(number),
        "x-goog-resource-uri": "https://www.googleapis.com/calendar/v3/calendars/ada/events",
    }
    parsed = parser.parse(PushRequest(query={}, headers=headers, body=b""))
    assert isinstance(parsed, list)
    (notice,) = parsed
    return notice


@pytest.mark.empty_database
def test_every_channel_carries_over_and_an_old_channels_notification_is_accepted(
    db_engine: sa.Engine,
) -> None:
    upgrade_database(db_engine, "0007")
    expires = NOW + timedelta(days=6)
    with db_engine.begin() as connection:
        for statement, values in (
            (
                "INSERT INTO \"user\" (name, api_token_hash, created_at) VALUES ('ada', 'h', :now)",
                {},
            ),
            (
                "INSERT INTO account (user_id, provider, email, state, created_at) "
                "VALUES (1, 'google', 'ada@example.com', 'active', :now)",
                {},
            ),
            (
                "INSERT INTO calendar (account_id, provider_calendar_id, name, access_role, "
                "sync_enabled, role, busy_title, include_all_day, read_only, "
                "keep_blocks_when_off) VALUES (1, 'ada', 'Ada', 'owner', true, 'both', "
                "'title', true, false, false)",
                {},
            ),
            (
                "INSERT INTO push_channel (calendar_id, channel_id, resource_id, token, address, "
                "expires_at, state, failures, last_message_number, last_notification_at, "
                "created_at, unannounced_changes) VALUES (1, 'calsync-old', 'res-1', 'tok-1', "
                "'https://calsync.example/webhooks/google', :expires, 'active', 0, 41, :now, "
                ":now, 1)",
                {"expires": expires},
            ),
            (
                "INSERT INTO push_channel (calendar_id, channel_id, token, address, state, "
                "failures, last_error, last_attempt_at, created_at, unannounced_changes) "
                "VALUES (1, 'calsync-failing', 'tok-2', '', 'failing', 3, 'refused', :now, "
                ":now, 0)",
                {},
            ),
            (
                "INSERT INTO push_channel (calendar_id, channel_id, resource_id, token, address, "
                "state, failures, created_at, stopped_at, unannounced_changes) VALUES (1, "
                "'calsync-stopped', 'res-0', 'tok-0', 'https://calsync.example/webhooks/google', "
                "'stopped', 0, :now, :now, 0)",
                {},
            ),
            (
                "INSERT INTO notification (channel_id, calendar_id, message_number, "
                "resource_state, outcome, received_at) VALUES ('calsync-old', 1, 1, 'sync', "
                "'sync_message', :now), ('calsync-old', 1, 41, 'not_exists', 'enqueued', :now)",
                {},
            ),
        ):
            connection.execute(sa.text(statement), {"now": NOW, **values})

    upgrade_database(db_engine)

    with Session(db_engine) as session:
        rows = {r.key: r for r in session.exec(select(PushSubscription))}
        kinds = [n.kind for n in session.exec(select(Notification).order_by(col(Notification.id)))]
    assert set(rows) == {"calsync-old", "calsync-failing", "calsync-stopped"}
    old = rows["calsync-old"]
    assert (old.provider, old.remote_id, old.resource, old.secret) == (
        "google",
        "calsync-old",
        "res-1",
        "tok-1",
    )
    assert (old.expires_at, old.state, old.last_sequence, old.unannounced_changes) == (
        expires,
        "active",
        41,
        1,
    )
    assert old.address == "https://calsync.example/webhooks/google"
    failing = rows["calsync-failing"]
    assert (failing.remote_id, failing.state, failing.failures, failing.last_error) == (
        None,
        "failing",
        3,
        "refused",
    )
    assert rows["calsync-stopped"].state == "stopped"
    assert kinds == ["opened", "changed"]

    # Google keeps notifying the old channel at its old address: accepted, and syncs; the
    # same channel through the keyed route (its key is its channel id) too.
    queue = JobQueue(db_engine, FixedClock(NOW))
    legacy = Incoming("google", _google_notice("calsync-old", "tok-1", "res-1", 42, "exists"))
    keyed = Incoming(
        "google",
        _google_notice("calsync-old", "tok-1", "res-1", 43, "exists"),
        key="calsync-old",
    )
    replayed = Incoming("google", _google_notice("calsync-old", "tok-1", "res-1", 41, "exists"))
    wrong = Incoming("google", _google_notice("calsync-old", "tok-x", "res-1", 44, "exists"))
    with db_engine.begin() as connection:
        recorded = record_notifications(connection, queue, [legacy, keyed, replayed, wrong], NOW)
    assert [h.outcome for h in recorded.handled] == [
        NotificationOutcome.ENQUEUED,
        NotificationOutcome.COALESCED,
        NotificationOutcome.DUPLICATE,
        NotificationOutcome.FORGED,
    ]
    with Session(db_engine) as session:
        carried = session.exec(
            select(PushSubscription).where(PushSubscription.key == "calsync-old")
        ).one()
    assert carried.last_sequence == 43
