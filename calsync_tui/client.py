"""The dashboard's HTTP client: the server's JSON API, decoded into shared/schemas.py types."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import httpx
import msgspec

from shared.http import AsyncReusedConnectionRetry
from shared.schemas import (
    AccountOut,
    BusyBlockPage,
    CalDAVConnected,
    CalDAVLogin,
    CalendarOut,
    CalendarPatch,
    ChannelOut,
    DisconnectReport,
    Explanation,
    PlanPreview,
    Problem,
    Readiness,
    Status,
    SyncAccepted,
    SyncLogPage,
    SyncRequest,
    Timeline,
)
from shared.schemas import ApiError as ApiErrorBody

T = TypeVar("T")

TIMEOUT_SECONDS = 30.0


class ApiError(Exception):
    """A request that failed; `str()` is the server's own message, fit for a notification."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthorizeAnswer(msgspec.Struct, kw_only=True):
    """The sign-in endpoint's answer (issue 7); unknown extra fields are ignored."""

    auth_url: str
    state: str = ""


def _problem(problem: Problem) -> str:
    return f"{problem.key}: {problem.message}" if problem.key else problem.message


def _message(response: httpx.Response) -> str:
    """The server's own sentence (`error` already says what is wrong, problems included); a
    problem of `detail` is added only when the sentence does not say it already."""
    try:
        body = msgspec.json.decode(response.content, type=ApiErrorBody)
    except msgspec.DecodeError:
        try:  # an `error` sentence with fields this dashboard does not know
            loose = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            loose = None
        if isinstance(loose, dict) and isinstance(loose.get("error"), str) and loose["error"]:
            return str(loose["error"])
        text = response.text.strip().splitlines()
        return f"the server answered {response.status_code}" + (f": {text[0]}" if text else "")
    extra = [_problem(p) for p in body.detail or () if p.message and p.message not in body.error]
    return body.error + (f" ({'; '.join(extra)})" if extra else "")


class CalsyncApi:
    """One server, one token. Opened lazily, inside the event loop that uses it."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self._http: httpx.AsyncClient | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self.headers,
                timeout=TIMEOUT_SECONDS,
                transport=AsyncReusedConnectionRetry(),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _call(
        self,
        method: str,
        path: str,
        answer: type[T],
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> T:
        content = None if body is None else msgspec.json.encode(body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._client().request(
                method, path, params=query, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ApiError(f"cannot reach the server at {self.base_url}: {reason}") from None
        if response.status_code >= 400:
            raise ApiError(_message(response), response.status_code)
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.DecodeError as exc:
            raise ApiError(f"the server's answer to {path} was not understood: {exc}") from None

    async def readiness(self) -> Readiness:
        """`GET /readyz`: its checks whether ready (200) or not (503)."""
        try:
            response = await self._client().get("readyz")
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ApiError(f"cannot reach the server at {self.base_url}: {reason}") from None
        if response.status_code not in (200, 503):
            raise ApiError(_message(response), response.status_code)
        try:
            return msgspec.json.decode(response.content, type=Readiness)
        except msgspec.DecodeError as exc:
            raise ApiError(f"the server's readiness was not understood: {exc}") from None

    async def status(self) -> Status:
        return await self._call("GET", "api/v1/status", Status)

    async def accounts(self) -> list[AccountOut]:
        return await self._call("GET", "api/v1/accounts", list[AccountOut])

    async def disconnect(self, account_id: int) -> DisconnectReport:
        return await self._call("DELETE", f"api/v1/accounts/{account_id}", DisconnectReport)

    async def authorize(self, provider: str, login_hint: str | None = None) -> AuthorizeAnswer:
        """`POST /api/v1/accounts/{provider}/authorize` (google, microsoft): a sign-in link the
        server finishes itself when the browser comes back."""
        body = {"login_hint": login_hint} if login_hint else {}
        return await self._call(
            "POST", f"api/v1/accounts/{provider}/authorize", AuthorizeAnswer, body=body
        )

    async def add_caldav(self, url: str, username: str, password: str) -> CalDAVConnected:
        """`POST /api/v1/accounts/caldav`: the server checks the login before storing it; a
        refusal (wrong password 401, unreachable server 400) is an ApiError in its words."""
        login = CalDAVLogin(url=url, username=username, password=password)
        return await self._call("POST", "api/v1/accounts/caldav", CalDAVConnected, body=login)

    async def calendars(self) -> list[CalendarOut]:
        return await self._call("GET", "api/v1/calendars", list[CalendarOut])

    async def change_calendar(self, calendar_id: int, change: CalendarPatch) -> CalendarOut:
        body = {k: v for k, v in msgspec.to_builtins(change).items() if v is not None}
        return await self._call("PATCH", f"api/v1/calendars/{calendar_id}", CalendarOut, body=body)

    async def busy_blocks(
        self,
        *,
        target_calendar_id: int | None = None,
        source_calendar_id: int | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> BusyBlockPage:
        params = {
            "target_calendar_id": target_calendar_id,
            "source_calendar_id": source_calendar_id,
            "limit": limit,
            "cursor": cursor,
        }
        return await self._call("GET", "api/v1/busy-blocks", BusyBlockPage, params=params)

    async def sync_logs(
        self, *, calendar_id: int | None = None, limit: int = 200, cursor: str | None = None
    ) -> SyncLogPage:
        params = {"calendar_id": calendar_id, "limit": limit, "cursor": cursor}
        return await self._call("GET", "api/v1/sync-logs", SyncLogPage, params=params)

    async def timeline(self, start: datetime, end: datetime) -> Timeline:
        """`GET /api/v1/timeline`: own events and calsync's blocks in [start, end)."""
        params = {"start": start.isoformat(), "end": end.isoformat()}
        return await self._call("GET", "api/v1/timeline", Timeline, params=params)

    async def explain(self, event_id: int) -> Explanation:
        """`GET /api/v1/explain`: why the event blocks or not, in each other calendar."""
        return await self._call("GET", "api/v1/explain", Explanation, params={"event_id": event_id})

    async def plan(self, calendar_id: int | None = None, *, full: bool = False) -> PlanPreview:
        """`GET /api/v1/plan`: what a sync (``full``: a full reconcile) of the calendar, or of
        every synced one, would change now; the server reads the providers, writes nothing."""
        params = {"calendar_id": calendar_id, "full": "true" if full else None}
        return await self._call("GET", "api/v1/plan", PlanPreview, params=params)

    async def channels(self) -> list[ChannelOut]:
        return await self._call("GET", "api/v1/channels", list[ChannelOut])

    async def confirm_deletes(self, calendar_id: int) -> CalendarOut:
        """Let the deletes the safety catch holds for the calendar go (a full sync of it)."""
        path = f"api/v1/calendars/{calendar_id}/confirm-deletes"
        return await self._call("POST", path, CalendarOut)

    async def sync(self, calendar_id: int | None = None, *, full: bool = False) -> SyncAccepted:
        return await self._call(
            "POST",
            "api/v1/sync",
            SyncAccepted,
            body=SyncRequest(calendar_id=calendar_id, full=full),
        )
