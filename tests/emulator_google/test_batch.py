"""Batch requests through the client library's own BatchHttpRequest, and the raw format."""

from __future__ import annotations

from typing import Any

import httpx
from googleapiclient.errors import HttpError

from tests.emulator_google.conftest import Emu, timed


def test_batch_mixes_writes_reads_and_errors_and_counts_each_call(emu: Emu) -> None:
    account = emu.account()
    service = emu.service(account)
    existing = (
        service.events()
        .insert(
            calendarId="primary", body={"summary": "old", **timed("2025-03-03", "08:00", "09:00")}
        )
        .execute()
    )
    emu.admin.post("/emulator/stats/reset")
    results: dict[str, Any] = {}

    def done(request_id: str, response: Any, exception: HttpError | None) -> None:
        results[request_id] = exception if exception is not None else response

    batch = service.new_batch_http_request(callback=done)
    batch.add(
        service.events().insert(
            calendarId="primary",
            body={"id": "batch0event01", "summary": "new", **timed("2025-03-03", "10:00", "11:00")},
        ),
        request_id="insert",
    )
    batch.add(
        service.events().patch(
            calendarId="primary", eventId=existing["id"], body={"summary": "renamed"}
        ),
        request_id="patch",
    )
    batch.add(
        service.events().get(calendarId="primary", eventId="missing0event"), request_id="missing"
    )
    batch.add(
        service.events().delete(calendarId="primary", eventId=existing["id"]), request_id="delete"
    )
    batch.execute()
    assert results["insert"]["id"] == "batch0event01"
    assert results["patch"]["summary"] == "renamed"
    assert isinstance(results["missing"], HttpError)
    assert results["missing"].resp.status == 404
    assert results["delete"] == ""
    stats = emu.stats()
    assert stats["requests"] == 1
    assert stats["calls"] == {
        "events.delete": 1,
        "events.get": 1,
        "events.insert": 1,
        "events.patch": 1,
    }
    assert stats["total_calls"] == 4
    listed = service.events().list(calendarId="primary", showDeleted=True).execute()["items"]
    assert {(e["id"], e["status"]) for e in listed} == {
        ("batch0event01", "confirmed"),
        (existing["id"], "cancelled"),
    }


def test_raw_batch_response_is_multipart_with_response_content_ids(emu: Emu) -> None:
    account = emu.account()
    boundary = "===============7330845974216740156=="
    part = (
        "GET /calendar/v3/calendars/primary?alt=json HTTP/1.1\n"
        "Content-Type: application/json\n"
        "accept: application/json\n"
        "\n"
    )
    body = (
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        f"Content-ID: <abc + 1>\r\n\r\n{part}\r\n--{boundary}--\r\n"
    )
    answer = httpx.post(
        f"{emu.url}batch/calendar/v3",
        content=body.encode(),
        headers={
            "content-type": f'multipart/mixed; boundary="{boundary}"',
            "authorization": f"Bearer {account.access_token}",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("multipart/mixed; boundary=")
    assert "Content-ID: <response-abc + 1>" in answer.text
    assert "HTTP/1.1 200 OK\r\n" in answer.text
    assert account.email in answer.text
    # Not multipart: refused as a whole.
    bad = httpx.post(
        f"{emu.url}batch/calendar/v3",
        content=b"{}",
        headers={
            "content-type": "application/json",
            "authorization": f"Bearer {account.access_token}",
        },
    )
    assert bad.status_code == 400
