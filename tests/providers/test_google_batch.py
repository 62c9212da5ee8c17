"""calsync's plain Google batch is the client library's batch, minus the email package: the same
request bytes on the wire, the same answers and errors read back from a multipart answer."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import google_auth_httplib2
import httplib2
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from calsync_server.providers.google.batch import PlainBatch
from calsync_server.providers.google.client import GoogleCalendarProvider, calendar_discovery
from calsync_server.providers.google.wire import BlockWrite, BlockWriteKind

BASE = uuid.UUID("12345678-1234-5678-1234-567812345678")


class _Recorder:
    """What a batch endpoint was sent, and the answer it gives (a real HTTP server)."""

    def __init__(self, answer: bytes, content_type: str) -> None:
        self.answer = answer
        self.content_type = content_type
        self.sent: list[tuple[str, bytes]] = []


@contextmanager
def batch_endpoint(recorder: _Recorder) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            recorder.sent.append((self.headers["content-type"], body))
            self.send_response(200)
            self.send_header("content-type", recorder.content_type)
            self.send_header("content-length", str(len(recorder.answer)))
            self.end_headers()
            self.wfile.write(recorder.answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _answer(boundary: str) -> bytes:
    """Google's answer to the four parts: created, patched, deleted, not found."""
    event = '{"id": "b1", "summary": "Busy \\u00e9", "etag": "\\"1\\""}'
    error = '{"error": {"code": 404, "message": "Not Found", "errors": [{"reason": "notFound"}]}}'
    parts = [
        ("1", "200 OK", ["Content-Type: application/json; charset=UTF-8"], event),
        ("2", "200 OK", ["Content-Type: application/json; charset=UTF-8", "ETag: x"], event),
        ("3", "204 No Content", ["Content-Length: 0"], ""),
        ("4", "404 Not Found", ["Content-Type: application/json; charset=UTF-8"], error),
    ]
    lines = ["a preamble the parser skips"]
    for n, status, headers, body in parts:
        lines += [
            f"--{boundary}",
            "Content-Type: application/http",
            f"Content-ID: <response-{BASE} + {n}>",
            "",
            f"HTTP/1.1 {status}",
            *headers,
            "",
            body,
        ]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode()


def _send(kind: type[BatchHttpRequest], url: str) -> list[tuple[str, Any]]:
    credentials = Credentials(token="token-1")  # type: ignore[no-untyped-call]
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http())
    events = build_from_document(calendar_discovery(url.rstrip("/")), http=http).events()
    outcomes: list[tuple[str, Any]] = []

    def answered(request_id: str, response: Any, exception: HttpError | None) -> None:
        if exception is not None:
            outcomes.append((request_id, (exception.status_code, exception.content)))
        else:
            outcomes.append((request_id, response))

    batch = kind(callback=answered, batch_uri=f"{url}batch/calendar/v3")
    batch._base_id = BASE
    body = {"summary": "Busy é", "start": {"dateTime": "2031-05-14T10:00:00Z"}}
    body["description"] = "From the planner\nFrom a second line"
    batch.add(events.insert(calendarId="w@example.com", body=body, sendUpdates="none"))
    patch = events.patch(calendarId="w@example.com", eventId="b1", body=body, sendUpdates="none")
    patch.headers["If-Match"] = '"1"'
    batch.add(patch)
    batch.add(events.delete(calendarId="w@example.com", eventId="b2", sendUpdates="none"))
    batch.add(events.get(calendarId="w@example.com", eventId="b3"))
    batch.execute(http=http)
    return outcomes


def _unbounded(content_type: str, body: bytes) -> bytes:
    """The body with its (random) boundary named B."""
    boundary = content_type.split('boundary="', 1)[1].rstrip('"')
    return body.replace(boundary.encode(), b"B")


@pytest.mark.parametrize(
    "content_type",
    ["multipart/mixed; boundary=batch_abc", 'multipart/mixed; boundary="batch_abc"'],
)
def test_a_plain_batch_sends_and_reads_what_the_client_library_does(content_type: str) -> None:
    recorder = _Recorder(_answer("batch_abc"), content_type)
    with batch_endpoint(recorder) as url:
        library = _send(BatchHttpRequest, url)
        plain = _send(PlainBatch, url)

    (library_type, library_body), (plain_type, plain_body) = recorder.sent
    assert _unbounded(plain_type, plain_body) == _unbounded(library_type, library_body)
    assert b"authorization: Bearer token-1" in plain_body
    assert plain == library
    assert [outcome[0] for outcome in plain] == ["1", "2", "3", "4"]
    assert plain[3][1][0] == 404


def test_an_answer_that_is_no_multipart_fails_as_in_the_client_library() -> None:
    recorder = _Recorder(b"not a batch", "text/plain")
    with batch_endpoint(recorder) as url:
        for kind in (BatchHttpRequest, PlainBatch):
            with pytest.raises(Exception, match="multipart/mixed") as raised:
                _send(kind, url)
            assert type(raised.value).__name__ == "BatchError"


def test_an_insert_made_from_the_calendars_first_is_the_one_the_library_builds() -> None:
    credentials = Credentials(token="token-1")  # type: ignore[no-untyped-call]
    client = GoogleCalendarProvider(credentials, root_url="http://127.0.0.1:9")
    calendars = ["work@example.com", "team#x@group.calendar.google.com", "c_ü+1@example.com"]
    try:
        for n in range(3):
            for calendar_id in calendars:
                body = {
                    "summary": f"Busy {n} é",
                    "start": {"dateTime": "2031-05-14T10:00:00Z", "timeZone": "Europe/Berlin"},
                    "extendedProperties": {"private": {"calsync": "busy-block", "n": str(n)}},
                }
                write = BlockWrite(BlockWriteKind.INSERT, calendar_id, "", body=body)
                made, built = client._request(write), client._method(write)
                assert made is not built
                assert (made.uri, made.method, made.body, made.headers, made.methodId) == (
                    built.uri,
                    built.method,
                    built.body,
                    built.headers,
                    built.methodId,
                )
                assert made.postproc == built.postproc
                assert made.http is built.http
    finally:
        client.close()
