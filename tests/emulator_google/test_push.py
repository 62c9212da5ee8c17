"""Push notifications to a real HTTP receiver: headers, order, retries, expiry, stop."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.emulator_google.conftest import Emu, timed
from tests.support.push_receiver import PushReceiver, push_receiver
from tests.support.waiting import wait_until

EXPIRATION = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


def _watch(service: Any, address: str, **extra: Any) -> dict[str, Any]:
    body = {"id": str(uuid.uuid4()), "type": "web_hook", "address": address, **extra}
    answer: dict[str, Any] = service.events().watch(calendarId="primary", body=body).execute()
    return answer


def _insert(service: Any, summary: str = "change") -> None:
    service.events().insert(
        calendarId="primary", body={"summary": summary, **timed("2025-03-03", "10:00", "11:00")}
    ).execute()


@pytest.fixture
def receiver() -> Any:
    with push_receiver() as running:
        yield running


def test_sync_then_exists_with_googles_headers(emu: Emu, receiver: PushReceiver) -> None:
    account = emu.account()
    service = emu.service(account)
    channel = _watch(service, receiver.url, token="secret-token", params={"ttl": "3600"})
    assert channel["kind"] == "api#channel"
    assert channel["token"] == "secret-token"
    assert channel["resourceUri"].startswith(f"{emu.url}calendar/v3/calendars/")
    assert int(channel["expiration"]) > 0
    sync = wait_until(lambda: receiver.notifications("sync"), what="the sync message")[0]
    headers = sync.headers
    assert headers["x-goog-channel-id"] == channel["id"]
    assert headers["x-goog-message-number"] == "1"
    assert headers["x-goog-resource-id"] == channel["resourceId"]
    assert headers["x-goog-resource-uri"] == channel["resourceUri"]
    assert headers["x-goog-channel-token"] == "secret-token"
    assert EXPIRATION.match(headers["x-goog-channel-expiration"]), headers
    assert headers["user-agent"].startswith("APIs-Google")
    assert sync.body == b""
    _insert(service)
    first = wait_until(lambda: receiver.notifications("exists"), what="an exists message")[0]
    _insert(service, "again")
    wait_until(lambda: len(receiver.notifications("exists")) >= 2, what="a second exists message")
    numbers = [int(n.headers["x-goog-message-number"]) for n in receiver.notifications()]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    assert numbers[0] == 1
    assert int(first.headers["x-goog-message-number"]) > 1
    assert receiver.notifications()[0].headers["x-goog-resource-state"] == "sync"
    # The emulator counts a delivery once the receiver's answer is back, a moment after the
    # receiver has recorded it.
    listed = wait_until(
        lambda: [c for c in emu.admin.get("/emulator/channels").json() if c["delivered"] >= 3],
        what="three deliveries counted",
    )
    assert listed[0]["id"] == channel["id"]
    assert listed[0]["resource_id"] == channel["resourceId"]
    assert listed[0]["calendar_id"] == account.email
    assert listed[0]["address"] == receiver.url
    assert listed[0]["expiration"] == int(channel["expiration"])
    assert listed[0]["failed"] == 0


def test_no_token_header_without_a_token(emu: Emu, receiver: PushReceiver) -> None:
    _watch(emu.service(emu.account()), receiver.url)
    sync = wait_until(lambda: receiver.notifications("sync"))[0]
    assert "x-goog-channel-token" not in sync.headers


def test_retries_with_backoff_on_503_only(emu: Emu, receiver: PushReceiver) -> None:
    service = emu.service(emu.account())
    receiver.script = [503, 502]
    _watch(service, receiver.url)
    wait_until(lambda: [n for n in receiver.notifications("sync") if n.answered == 200])
    assert [n.answered for n in receiver.notifications()] == [503, 502, 200]
    wait_until(lambda: emu.admin.get("/emulator/channels").json()[0]["delivered"] == 1)
    # A 404 is a failed delivery, not retried; the next change is still announced.
    receiver.script = [404]
    _insert(service)
    wait_until(lambda: emu.admin.get("/emulator/channels").json()[0]["failed"] == 1)
    _insert(service, "second")
    wait_until(lambda: [n for n in receiver.notifications("exists") if n.answered == 200])
    assert [n.answered for n in receiver.notifications("exists")] == [404, 200]


def test_expired_and_stopped_channels_stay_silent(emu: Emu, receiver: PushReceiver) -> None:
    service = emu.service(emu.account())
    with push_receiver() as witness_receiver:
        short = _watch(service, receiver.url, params={"ttl": "1"})
        stopped = _watch(service, receiver.url)
        witness = _watch(service, witness_receiver.url)
        wait_until(lambda: len(receiver.notifications("sync")) == 2)
        wait_until(lambda: witness_receiver.notifications("sync"))
        service.channels().stop(
            body={"id": stopped["id"], "resourceId": stopped["resourceId"]}
        ).execute()
        wait_until(
            lambda: (
                {c["id"] for c in emu.admin.get("/emulator/channels").json()} == {witness["id"]}
            ),
            what="the short channel to expire",
        )
        _insert(service)
        wait_until(lambda: witness_receiver.notifications("exists"), what="the witness")
        assert receiver.notifications("exists") == []
        assert short["id"] != witness["id"]
        with pytest.raises(HttpError) as caught:
            service.channels().stop(body={"id": witness["id"], "resourceId": "wrong"}).execute()
        assert caught.value.resp.status == 404
        # Both are gone from the listing; the admin API names the one that was stopped.
        assert emu.admin.get("/emulator/channels/stopped").json() == [stopped["id"]]


def test_watch_validates_address_and_channel_id(emu: Emu, receiver: PushReceiver) -> None:
    service = emu.service(emu.account())
    with pytest.raises(HttpError) as caught:
        _watch(service, "http://example.com/hook")
    assert caught.value.error_details[0]["reason"] == "push.webhookUrlNotHttps"
    channel = _watch(service, receiver.url)
    with pytest.raises(HttpError) as caught:
        service.events().watch(
            calendarId="primary",
            body={"id": channel["id"], "type": "web_hook", "address": receiver.url},
        ).execute()
    assert caught.value.resp.status == 400
    with pytest.raises(HttpError):
        service.events().watch(
            calendarId="primary", body={"id": "x" * 65, "type": "web_hook", "address": receiver.url}
        ).execute()
