"""Google Calendar over google-api-python-client, pointed at Google or the emulator: the calls,
their retries and batches, in Google's JSON (the mapping turns it into calsync's types)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

import google.auth.exceptions
import google_auth_httplib2
import httplib2
import tenacity
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from calsync_server.providers.google.batch import PlainBatch
from calsync_server.providers.google.wire import (
    BlockWrite,
    BlockWriteKind,
    ChannelInfo,
    EventFeed,
    ProviderCalendar,
    ProviderError,
    ProviderUnavailable,
    ReauthRequired,
    SyncTokenExpired,
    WriteResult,
)
from calsync_server.providers.model import CallStats
from calsync_server.providers.pacing import Pacer
from calsync_server.providers.retry import RetryPolicy

T = TypeVar("T")

# calsync's own ceiling (Google allows 1000): keeps one failed batch cheap to retry.
BATCH_SIZE = 50
# Batches of one write sent at once, each on a connection of its own: Google takes a user's
# batches in parallel, and a first sync's writes wait on the network, not on calsync.
WRITE_CONCURRENCY = 2
PAGE_SIZE = 2500
SCOPES = (
    "https://www.googleapis.com/auth/calendar.calendarlist.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
)


@cache
def _discovery_document() -> str:
    doc = get_static_doc("calendar", "v3")
    if doc is None:  # pragma: no cover - the library ships it
        raise RuntimeError("google-api-python-client has no static calendar v3 document")
    return str(doc)


def calendar_discovery(root_url: str) -> dict[str, Any]:
    """The static Calendar v3 document with its root moved (so batches go there too)."""
    document: dict[str, Any] = json.loads(_discovery_document())
    document["rootUrl"] = root_url if root_url.endswith("/") else root_url + "/"
    return document


def token_uri(root_url: str) -> str:
    if root_url.rstrip("/") == "https://www.googleapis.com":
        return "https://oauth2.googleapis.com/token"
    return root_url.rstrip("/") + "/token"


def revoke_uri(root_url: str) -> str:
    if root_url.rstrip("/") == "https://www.googleapis.com":
        return "https://oauth2.googleapis.com/revoke"
    return root_url.rstrip("/") + "/revoke"


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _RetryableError(Exception):
    def __init__(self, error: ProviderError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def provider_error(exc: HttpError) -> ProviderError:
    """Google's error body -> ProviderError with the first reason (e.g. rateLimitExceeded)."""
    status = int(exc.resp.status)
    reason, message = "", ""
    try:
        body = json.loads(exc.content.decode("utf-8"))
        error = body.get("error", {})
        message = str(error.get("message", ""))
        errors = error.get("errors") or [{}]
        reason = str(errors[0].get("reason", ""))
    except (ValueError, AttributeError):
        message = exc.content.decode("utf-8", "replace")[:200]
    if status == 410 and reason == "fullSyncRequired":
        return SyncTokenExpired(status, reason, message)
    return ProviderError(status, reason, message)


def _retry_after(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _translated(call: Callable[[], T]) -> T:
    """Run one HTTP request, turning the client library's failures into calsync's."""
    try:
        return call()
    except HttpError as exc:
        error = provider_error(exc)
        if error.transient:
            raise _RetryableError(error, _retry_after(exc)) from exc
        raise error from exc
    except google.auth.exceptions.RefreshError as exc:
        raise ReauthRequired(401, "invalid_grant", str(exc)) from exc
    except (OSError, httplib2.HttpLib2Error) as exc:
        # Timeouts and dropped connections: transient.
        raise _RetryableError(ProviderError(0, "connection", str(exc)), None) from exc


class GoogleCalendarProvider:
    """One Google account. Not thread-safe (httplib2): one instance per sync job."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        root_url: str,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        pacer: Pacer | None = None,
        concurrency: int = WRITE_CONCURRENCY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        # How a retry waits its backoff (or Retry-After): tests record the waits instead.
        self._sleep = sleep
        self._concurrency = max(1, concurrency)
        self._timeout = timeout
        # Connections for batches sent side by side (httplib2's are not thread-safe): one is
        # taken per batch and given back.
        self._spare: queue.SimpleQueue[google_auth_httplib2.AuthorizedHttp] = queue.SimpleQueue()
        self._made: list[google_auth_httplib2.AuthorizedHttp] = []
        self._counting = threading.Lock()
        # The user's quota (each call of a batch counts); None: calls go unpaced.
        self._pacer = pacer
        self.stats = CallStats()
        self._retry = retry or RetryPolicy()
        self._http = google_auth_httplib2.AuthorizedHttp(
            credentials, http=httplib2.Http(timeout=timeout)
        )
        self._service = build_from_document(calendar_discovery(root_url), http=self._http)
        # Made once: the client library builds a resource's methods, documentation and all,
        # on every `service.events()` (about 7 ms, more than a block write's own work).
        self._events = self._service.events()
        self._batch_uri = self._service.new_batch_http_request()._batch_uri
        # Each calendar's first insert, as the library built it: the others are made from it.
        self._inserts: dict[str, HttpRequest] = {}

    def close(self) -> None:
        # httplib2 keeps its sockets open until told (googleapiclient's Resource.close).
        self._service.close()
        for http in self._made:
            http.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, what: str, call: Callable[[], T]) -> T:
        """Run one API request with retries; counts it and its retries."""

        def attempt() -> T:
            self._count(requests=1, calls=1)
            return self._paced(1, lambda: _translated(call))

        return self._with_retries(what, attempt)

    def _paced(self, calls: int, send: Callable[[], T]) -> T:
        if self._pacer is None:
            return send()
        with self._pacer.take(calls):
            return send()

    def _with_retries(self, what: str, attempt: Callable[[], T]) -> T:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._retry.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_RetryableError),
            before_sleep=lambda state: self._count_retry(what, state),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _RetryableError as exc:
            raise ProviderUnavailable(
                exc.error.status, exc.error.reason, f"{what}: gave up after retries"
            ) from exc

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, _RetryableError) else None
        return self._retry.delay(state.attempt_number, retry_after)

    def _count_retry(self, what: str, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        label = exc.error.status or exc.error.reason if isinstance(exc, _RetryableError) else ""
        self._count(retries=1, note=f"retried after {label}" if label else "")

    def _count(
        self, *, requests: int = 0, calls: int = 0, retries: int = 0, note: str = ""
    ) -> None:
        with self._counting:  # batches of one write run in several threads
            self.stats.requests += requests
            self.stats.calls += calls
            self.stats.retries += retries
            if note:
                self.stats.note(note)

    # -- reads ------------------------------------------------------------------------------

    def list_calendars(self) -> list[ProviderCalendar]:
        calendars: list[ProviderCalendar] = []
        page_token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"maxResults": 250}
            if page_token:
                kwargs["pageToken"] = page_token
            page: dict[str, Any] = self._run(
                "calendarList.list", self._service.calendarList().list(**kwargs).execute
            )
            for item in page.get("items", []):
                calendars.append(
                    ProviderCalendar(
                        provider_calendar_id=item["id"],
                        name=item.get("summaryOverride") or item.get("summary") or item["id"],
                        time_zone=item.get("timeZone"),
                        color=item.get("backgroundColor"),
                        access_role=item.get("accessRole", "reader"),
                        primary=bool(item.get("primary", False)),
                    )
                )
            page_token = page.get("nextPageToken")
            if not page_token:
                return calendars

    def _pages(self, calendar_id: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page_token: str | None = None
        while True:
            kwargs = dict(params, calendarId=calendar_id, maxResults=PAGE_SIZE)
            if page_token:
                kwargs["pageToken"] = page_token
            page: dict[str, Any] = self._run("events.list", self._events.list(**kwargs).execute)
            yield page
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def fetch_events(
        self,
        calendar_id: str,
        *,
        sync_token: str | None,
        time_min: datetime,
        time_max: datetime,
    ) -> EventFeed:
        params: dict[str, Any] = {"singleEvents": True}
        if sync_token:
            # With a sync token Google forbids timeMin/timeMax; paging repeats the token.
            params["syncToken"] = sync_token
        else:
            params["timeMin"] = _rfc3339(time_min)
            params["timeMax"] = _rfc3339(time_max)
        items: list[dict[str, Any]] = []
        next_sync_token: str | None = None
        for page in self._pages(calendar_id, params):
            items.extend(page.get("items", []))
            next_sync_token = page.get("nextSyncToken") or next_sync_token
        return EventFeed(items=items, next_sync_token=next_sync_token, full=sync_token is None)

    def list_busy_blocks(self, calendar_id: str, *, time_min: datetime) -> list[dict[str, Any]]:
        params = {
            "singleEvents": True,
            "privateExtendedProperty": "calsync=busy-block",
            "timeMin": _rfc3339(time_min),
        }
        return [item for page in self._pages(calendar_id, params) for item in page["items"]]

    # -- writes -----------------------------------------------------------------------------

    def _request(self, write: BlockWrite) -> Any:
        request = (
            self._insert(write) if write.kind is BlockWriteKind.INSERT else self._method(write)
        )
        if write.if_match:
            request.headers["If-Match"] = write.if_match
        return request

    def _insert(self, write: BlockWrite) -> HttpRequest:
        """An insert as the library builds it, made from the calendar's first: they differ in
        their body alone. The discovery document's method (its parameter checks, URI template,
        query and headers, every time) cost ~18% of calsync's CPU in a first sync's writes."""
        template = self._inserts.get(write.calendar_id)
        if template is None:
            template = self._inserts.setdefault(write.calendar_id, self._method(write))
        model = template.postproc.__self__  # the JSON model whose response() reads answers
        return HttpRequest(
            template.http,
            template.postproc,
            template.uri,
            method=template.method,
            body=model.serialize(write.body),
            headers=dict(template.headers),
            methodId=template.methodId,
        )

    def _method(self, write: BlockWrite) -> Any:
        events = self._events
        if write.kind is BlockWriteKind.INSERT:
            return events.insert(calendarId=write.calendar_id, body=write.body, sendUpdates="none")
        if write.kind is BlockWriteKind.PATCH:
            return events.patch(
                calendarId=write.calendar_id,
                eventId=write.event_id,
                body=write.body,
                sendUpdates="none",
            )
        if write.kind is BlockWriteKind.DELETE:
            return events.delete(
                calendarId=write.calendar_id, eventId=write.event_id, sendUpdates="none"
            )
        return events.get(calendarId=write.calendar_id, eventId=write.event_id)

    def write(self, writes: Sequence[BlockWrite]) -> list[WriteResult]:
        """The writes in batches of BATCH_SIZE, up to the client's concurrency at once."""
        chunks = [
            dict(enumerate(writes[start : start + BATCH_SIZE], start))
            for start in range(0, len(writes), BATCH_SIZE)
        ]
        results: dict[int, WriteResult] = {}
        if len(chunks) <= 1 or self._concurrency == 1:
            for chunk in chunks:
                results.update(self._write_batch(chunk))
        else:
            with ThreadPoolExecutor(min(self._concurrency, len(chunks))) as pool:
                for done in pool.map(self._write_batch, chunks):
                    results.update(done)
        return [results[i] for i in range(len(writes))]

    def _connection(self) -> google_auth_httplib2.AuthorizedHttp:
        try:
            return self._spare.get_nowait()
        except queue.Empty:
            http = google_auth_httplib2.AuthorizedHttp(
                self.credentials, http=httplib2.Http(timeout=self._timeout)
            )
            with self._counting:
                self._made.append(http)
            return http

    def _write_batch(self, pending: dict[int, BlockWrite]) -> dict[int, WriteResult]:
        """One batch on a connection of its own; failed parts that are transient go again,
        after a backoff, bounded."""
        http = self._connection()
        try:
            return self._write_batch_on(http, pending)
        finally:
            self._spare.put(http)

    def _write_batch_on(
        self, http: google_auth_httplib2.AuthorizedHttp, pending: dict[int, BlockWrite]
    ) -> dict[int, WriteResult]:
        done: dict[int, WriteResult] = {}
        last_transient: dict[int, ProviderError] = {}

        def attempt() -> None:
            todo = {i: w for i, w in pending.items() if i not in done}
            outcome: dict[int, tuple[Any, HttpError | None]] = {}

            def callback(request_id: str, response: Any, exception: HttpError | None) -> None:
                outcome[int(request_id)] = (response, exception)

            batch = PlainBatch(callback=callback, batch_uri=self._batch_uri)
            for i, write in todo.items():
                batch.add(self._request(write), request_id=str(i))
            self._count(requests=1, calls=len(todo))
            self._paced(len(todo), lambda: _translated(lambda: batch.execute(http=http)))
            retry_after: float | None = None
            last_transient.clear()
            for i, write in todo.items():
                response, exception = outcome.get(i, (None, None))
                if exception is None:
                    done[i] = WriteResult(write, resource=response or None)
                    continue
                error = provider_error(exception)
                if error.transient:
                    last_transient[i] = error
                    retry_after = max(retry_after or 0.0, _retry_after(exception) or 0.0) or None
                else:
                    done[i] = WriteResult(write, error=error)
            if last_transient:
                first = next(iter(last_transient.values()))
                raise _RetryableError(first, retry_after)

        try:
            self._with_retries("batch", attempt)
        except ProviderUnavailable as exc:
            for i, error in last_transient.items():
                done[i] = WriteResult(
                    pending[i], error=ProviderUnavailable(error.status, error.reason, str(exc))
                )
            for i, write in pending.items():
                done.setdefault(i, WriteResult(write, error=exc))
        return done

    # -- push channels ----------------------------------------------------------------------

    def watch(
        self, calendar_id: str, *, channel_id: str, token: str, address: str, ttl_seconds: int
    ) -> ChannelInfo:
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "params": {"ttl": str(ttl_seconds)},
        }
        answer: dict[str, Any] = self._run(
            "events.watch",
            lambda: self._events.watch(calendarId=calendar_id, body=body).execute(),
        )
        expiration = answer.get("expiration")
        return ChannelInfo(
            channel_id=answer["id"],
            resource_id=answer["resourceId"],
            expires_at=(
                datetime.fromtimestamp(int(expiration) / 1000, UTC) if expiration else None
            ),
        )

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        body = {"id": channel_id, "resourceId": resource_id}
        self._run("channels.stop", lambda: self._service.channels().stop(body=body).execute())
