"""calsync's HTTP client for Microsoft Graph: UTC times and immutable ids on every call,
transient failures retried after Retry-After, at most 4 requests in flight per mailbox."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import msgspec

from calsync_server.providers.microsoft.mapping import TRANSIENT_STATUSES, error_kind
from calsync_server.providers.microsoft.wire import BatchResponse
from calsync_server.providers.model import CallStats, ErrorKind, ProviderError
from calsync_server.providers.pacing import Pacer
from calsync_server.providers.retry import retry_after_seconds

# Graph answers in UTC and names events by ids that survive moves between folders.
PREFER = 'outlook.timezone="UTC", IdType="ImmutableId"'
# Outlook's limit: 4 concurrent requests per app per mailbox.
MAILBOX_CONCURRENCY = 4
MAX_BATCH = 20


class TokenSource(Protocol):
    def token(self, *, force_refresh: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, from a plain request or a `$batch` item."""

    status: int
    headers: Mapping[str, str]  # names in lower case
    body: Any  # decoded JSON, text, or None
    # When it came, on the client's clock: an HTTP-date Retry-After counts from here.
    received: datetime

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict):
                return str(error.get("code") or "")
        return ""

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message") or "")
        return str(self.body or "")[:200]

    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers.get("retry-after"), self.received)

    def error(self, *, reading_delta: bool = False) -> ProviderError:
        kind = error_kind(self.status, self.code, reading_delta=reading_delta)
        detail = f"{self.status} {self.code}: {self.message}".strip()
        return ProviderError(kind, detail, retry_after=self.retry_after())


@dataclass(frozen=True, slots=True)
class BatchItem:
    id: str
    method: str
    url: str  # relative to the Graph root, starting with "/"
    body: Any = None
    headers: Mapping[str, str] | None = None


def with_prefer(headers: Mapping[str, str]) -> str:
    """calsync's Prefer (UTC, immutable ids) with whatever a call prefers besides."""
    extra = next((v for k, v in headers.items() if k.lower() == "prefer"), None)
    return f"{PREFER}, {extra}" if extra else PREFER


_limits_lock = threading.Lock()
_limits: dict[str, threading.BoundedSemaphore] = {}


def mailbox_limit(mailbox_key: str, size: int = MAILBOX_CONCURRENCY) -> threading.BoundedSemaphore:
    """One gate per mailbox for the whole process: two providers of one account share it."""
    with _limits_lock:
        gate = _limits.get(mailbox_key)
        if gate is None:
            gate = _limits[mailbox_key] = threading.BoundedSemaphore(size)
        return gate


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            return response.text
    return response.text


class GraphClient:
    """Blocking Graph calls for one mailbox; safe to use from several threads."""

    def __init__(
        self,
        root: str,
        tokens: TokenSource,
        *,
        mailbox_key: str,
        stats: CallStats,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_wait_s: float = 60.0,
        timeout_s: float = 30.0,
        max_concurrency: int = MAILBOX_CONCURRENCY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self.tokens = tokens
        self.stats = stats
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.gate = mailbox_limit(mailbox_key, max_concurrency)
        # The mailbox's request quota (each item of a batch counts); None: unpaced.
        self.pacer = pacer
        self.sleep = sleep
        self.clock = clock
        self._stats_lock = threading.Lock()
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ bookkeeping

    def count(self, *, calls: int = 0, requests: int = 0, retries: int = 0, note: str = "") -> None:
        with self._stats_lock:
            self.stats.calls += calls
            self.stats.requests += requests
            self.stats.retries += retries
            if note:
                self.stats.note(note)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.root + path

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """How long to wait before try ``attempt + 1``: Graph's Retry-After when it gave one,
        else exponential backoff with full jitter."""
        if retry_after is not None:
            return retry_after
        return random.uniform(0, self.backoff_s * 2**attempt)

    # ----------------------------------------------------------------------- calls

    def _request(self, method: str, url: str, weight: int, **kwargs: Any) -> httpx.Response:
        """One HTTP request within the quota (waiting for room first, holding no slot of the
        mailbox's 4 meanwhile), then within the mailbox's concurrency."""
        if self.pacer is None:
            with self.gate:
                return self._http.request(method, self.url(url), **kwargs)
        with self.pacer.take(weight), self.gate:
            return self._http.request(method, self.url(url), **kwargs)

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Any,
        json: Any,
        headers: Mapping[str, str],
        weight: int = 1,
    ) -> Answer:
        token = self.tokens.token()
        sent = {k: v for k, v in headers.items() if k.lower() != "prefer"}
        sent.update(authorization=f"Bearer {token}", prefer=with_prefer(headers))
        self.count(requests=1)
        try:
            response = self._request(method, url, weight, params=params, json=json, headers=sent)
        except httpx.TransportError as exc:
            # Timeouts, refused and dropped connections: worth another try.
            return Answer(0, {}, f"{type(exc).__name__}: {exc}", self.clock())
        if response.status_code == 401:
            # The access token was refused before its time (revoked): one forced refresh.
            fresh = self.tokens.token(force_refresh=True)
            sent["authorization"] = f"Bearer {fresh}"
            self.count(requests=1)
            try:
                response = self._request(
                    method, url, weight, params=params, json=json, headers=sent
                )
            except httpx.TransportError as exc:
                return Answer(0, {}, f"{type(exc).__name__}: {exc}", self.clock())
        return Answer(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            _decode(response),
            self.clock(),
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        calls: int = 1,
        weight: int = 1,
    ) -> Answer:
        """One call, transient failures retried (Retry-After honoured, bounded); the final
        answer, whatever its status. ``calls`` is what it counts as in the sync's counts, and
        ``weight`` against the mailbox's quota (a batch: its items)."""
        self.count(calls=calls)
        attempt = 0
        while True:
            answer = self._send_once(
                method, url, params=params, json=json, headers=headers or {}, weight=weight
            )
            if answer.status not in TRANSIENT_STATUSES and answer.status != 0:
                return answer
            wait = self.backoff(attempt, answer.retry_after())
            attempt += 1
            if attempt >= self.max_attempts or wait > self.max_wait_s:
                return answer
            self.count(retries=1, note=_retry_note(answer.status))
            self.sleep(wait)

    def call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        reading_delta: bool = False,
        weight: int = 1,
    ) -> Answer:
        """As `send`, raising ProviderError for any failure."""
        answer = self.send(method, url, params=params, json=json, headers=headers, weight=weight)
        if answer.status == 0:
            raise ProviderError(ErrorKind.TRANSIENT, str(answer.body))
        if not answer.ok:
            raise answer.error(reading_delta=reading_delta)
        return answer

    def batch(self, items: list[BatchItem]) -> dict[str, Answer]:
        """One JSON `$batch` of at most 20 items, answered by id (Graph answers in any order).
        A failure of the whole batch raises ProviderError; items answer for themselves."""
        if not 0 < len(items) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} requests, not {len(items)}")
        requests: list[dict[str, Any]] = []
        for item in items:
            entry: dict[str, Any] = {
                "id": item.id,
                "method": item.method,
                "url": item.url,
                # Graph does not pass the outer request's headers on to its items.
                "headers": {
                    **{k: v for k, v in (item.headers or {}).items() if k.lower() != "prefer"},
                    "prefer": with_prefer(item.headers or {}),
                },
            }
            if item.body is not None:
                entry["body"] = item.body
                entry["headers"]["content-type"] = "application/json"
            requests.append(entry)
        answer = self.call("POST", "/$batch", json={"requests": requests}, weight=len(items))
        try:
            parsed = msgspec.convert(answer.body, BatchResponse)
        except msgspec.ValidationError as exc:
            raise ProviderError(ErrorKind.INVALID, f"an unreadable $batch answer: {exc}") from exc
        # A batch counts as one call above; each further item is one call more.
        self.count(calls=len(items) - 1)
        received = self.clock()
        found = {
            a.id: Answer(a.status, {k.lower(): v for k, v in a.headers.items()}, a.body, received)
            for a in parsed.responses
        }
        missing = [i.id for i in items if i.id not in found]
        if missing:
            raise ProviderError(ErrorKind.TRANSIENT, f"$batch answered no item {missing[0]}")
        return found


def _retry_note(status: int) -> str:
    return "retried after a dropped connection" if status == 0 else f"retried after {status}"
