"""`POST /webhooks/{provider}/{key}`: our key in the path finds the subscription, the provider's
parser (from the registry) reads the request, and the same checks as ever apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlmodel import Session, col, select

from calsync_server.db.models import Account, Calendar, Notification, PushSubscription
from tests.server.conftest import ServerWorld
from tests.server.test_webhooks import headers_of, jobs
from tests.support.waiting import wait_until
from tests.support.world import timed


def _recorded(world: ServerWorld, key: str) -> list[tuple[int | None, str, str]]:
    with Session(world.db) as session:
        rows = session.exec(
            select(Notification)
            .where(Notification.channel_id == key)
            .order_by(col(Notification.id))
        ).all()
    return [(n.message_number, n.kind, str(n.outcome)) for n in rows]


def test_the_path_key_routes_googles_notices_and_the_checks_hold(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    home = world.account(f"home-{unique}@example.com")["primary"]
    world.configure(work, home)
    world.start()
    with world.api() as api:
        world.wait_for_channels(work, home)
        wait_until(lambda: world.settled(api), what="the first syncs")
        channel = world.channel(work)
        assert channel is not None
        assert channel.address.endswith(f"/webhooks/google/{channel.key}")
        # The emulator delivers to the keyed address: a change arrives that way and syncs.
        world.insert(work, **timed("Review", 11, 12))
        wait_until(lambda: world.blocks(home), what="the review's block")
        assert any(
            kind == "changed" and outcome in ("enqueued", "coalesced")
            for _, kind, outcome in _recorded(world, channel.key)
        )
        channel = world.channel(work)
        assert channel is not None
        assert channel.last_sequence is not None
        number = channel.last_sequence + 1
        url = f"{world.url}webhooks/google/{channel.key}"
        with httpx.Client(timeout=10) as client:
            answer = client.post(url, headers=headers_of(channel, number))
            assert answer.status_code == 200, answer.text
            assert answer.json()["outcome"] in ("enqueued", "coalesced")

            # A wrong secret: refused, recorded, and nothing queued.
            forged = headers_of(channel, number + 1) | {"X-Goog-Channel-Token": "not-the-secret"}
            answer = client.post(url, headers=forged)
            assert answer.status_code == 403, answer.text
            assert _recorded(world, channel.key)[-1] == (number + 1, "changed", "forged")

            # The key of one subscription with another's channel id: forged too.
            other = world.channel(home)
            assert other is not None
            crossed = headers_of(other, number + 2) | {"X-Goog-Channel-Token": channel.secret}
            assert client.post(url, headers=crossed).status_code == 403

            # A key calsync never made: acknowledged (the provider stops retrying).
            stranger = f"{world.url}webhooks/google/calsync-{unique}"
            answer = client.post(stranger, headers=headers_of(channel, number + 3))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"outcome": "unknown_channel"}

            # Malformed headers name the header, as on the old route.
            answer = client.post(url, headers={"X-Goog-Channel-ID": channel.key})
            assert answer.status_code == 400
            assert "X-Goog-Resource-State" in answer.json()["error"]

            # A provider calsync has no push for.
            answer = client.post(f"{world.url}webhooks/caldav/{channel.key}")
            assert answer.status_code == 404, answer.text


def test_a_validation_handshake_is_answered_at_once_for_our_own_keys_only(
    server_world: ServerWorld, unique: str
) -> None:
    """Graph's handshake through Microsoft's parser: the token back as text/plain for a key
    calsync made for that provider; any other key is refused. At once: Graph gives up after
    10 s, so the answer waits for nothing (no provider call, nothing recorded or queued);
    that it comes while calsync's own create of the subscription waits for it is
    test_microsoft_push's (Graph's emulator validates before it answers the create)."""
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.configure(work)
    world.start()
    world.wait_for_channels(work)
    channel = world.channel(work)
    assert channel is not None
    with httpx.Client(timeout=10) as client:
        # A Google channel's key is not a Microsoft subscription's.
        answer = client.post(
            f"{world.url}webhooks/microsoft/{channel.key}",
            params={"validationToken": "Validation: token 1"},
        )
        assert answer.status_code == 404, answer.text
        # Graph's notices are JSON: a body that is not is refused, naming why.
        answer = client.post(f"{world.url}webhooks/microsoft/{channel.key}", content=b"[]")
        assert answer.status_code == 400, answer.text

    # A Microsoft subscription of this calendar, as the keeper stores one before Graph is
    # asked (Graph validates the address before it answers the create).
    key = f"calsync-ms-{unique}"
    with Session(world.db) as session:
        session.add(
            PushSubscription(
                calendar_id=work.id,
                provider="microsoft",
                key=key,
                secret="client-state",
                address=f"{world.url}webhooks/microsoft/{key}",
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(days=2),
            )
        )
        session.commit()
    url = f"{world.url}webhooks/microsoft/{key}"
    with world.api() as api:
        wait_until(lambda: world.settled(api), what="the first sync")
    jobs_before = jobs(world, work)
    world.reset_stats()
    with httpx.Client(timeout=10) as client:
        answer = client.post(url, params={"validationToken": "Validation: token 1"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        assert answer.text == "Validation: token 1"
        # It asked the provider nothing, and it is no notification: nothing recorded, no sync.
        assert world.stats()["calls"] == {}
        assert _recorded(world, key) == []
        assert jobs(world, work) == jobs_before
        assert (
            client.post(
                f"{world.url}webhooks/microsoft/calsync-nobody", params={"validationToken": "t"}
            ).status_code
            == 404
        )

        def graph(client_state: str, sequence: int) -> httpx.Response:
            item = {
                "subscriptionId": "graph-subscription-1",
                "changeType": "updated",
                "clientState": client_state,
                "resource": f"Users/u/Events/e{sequence}",
            }
            return client.post(url, json={"value": [item]})

        # No remote id stored yet (the create has not answered): the key and secret decide.
        answer = graph("client-state", 1)
        assert answer.status_code == 202, answer.text
        assert answer.json()["outcome"] in ("enqueued", "coalesced")
        answer = graph("guessed", 2)
        assert answer.status_code == 403, answer.text
        recorded = _recorded(world, key)
        assert [(n, k) for n, k, _ in recorded] == [(None, "changed"), (None, "changed")]
        assert recorded[0][2] in ("enqueued", "coalesced")
        assert recorded[1][2] == "forged"


def _pushes(api: httpx.Client, path: str, key: str = "id") -> dict[int, tuple[str, str | None]]:
    answer = api.get(path)
    assert answer.status_code == 200, answer.text
    return {row[key]: (row["push"], row["polled_because"]) for row in answer.json()}


def test_polled_by_design_is_not_push_failing(server_world: ServerWorld, unique: str) -> None:
    """A provider without push (CalDAV) and a server without a public URL are "polled", with
    the reason; a calendar whose push should work and does not is "failing"."""
    world = server_world
    work = world.account(f"work-{unique}@example.com")["primary"]
    caldav = world.account(f"dav-{unique}@example.com")["primary"]
    world.configure(work, caldav)
    with Session(world.db) as session:
        calendar = session.get(Calendar, caldav.id)
        assert calendar is not None
        account = session.get(Account, calendar.account_id)
        assert account is not None
        account.provider = "caldav"  # type: ignore[assignment]
        session.add(account)
        session.commit()
    world.start(push=False)
    with world.api() as api:
        polled = {
            work.id: ("polled", "no_public_url"),
            caldav.id: ("polled", "provider_without_push"),
        }
        assert _pushes(api, "/api/v1/calendars") == polled
        assert _pushes(api, "/api/v1/channels", key="calendar_id") == polled
