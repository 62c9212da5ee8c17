"""Graph v1.0 routes, transport-free so plain requests and `$batch` items share one path:
auth, throttling, faults, then the calendar, delta and subscription operations."""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from calsync_server.emulators.common.api import ApiRequest, ApiResponse
from calsync_server.emulators.common.faults import Faults, Stats
from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.delta import DeltaRounds, Prefs
from calsync_server.emulators.microsoft.store import (
    Item,
    Mailbox,
    Resource,
    Store,
    graph_time,
    item_of,
    parse_window,
)
from calsync_server.emulators.microsoft.subscriptions import Subscriptions
from calsync_server.emulators.microsoft.throttle import Throttle

JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;charset=utf-8"
MAX_BATCH = 20
DEFAULT_TOP = 10
MAX_TOP = 1000
_ID = "([^/]+)"
_EVENTS = r"/me(?:/calendar|/calendars/(?P<cal>[^/]+))?/events"
_VIEW = r"/me(?:/calendar|/calendars/(?P<cal>[^/]+))?/calendarView"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/me$"), "me.get"),
    ("GET", re.compile(r"^/me/mailboxSettings$"), "me.mailboxSettings"),
    ("POST", re.compile(r"^/me/revokeSignInSessions$"), "me.revokeSignInSessions"),
    ("GET", re.compile(r"^/me/calendars$"), "calendars.list"),
    ("POST", re.compile(r"^/me/calendars$"), "calendars.create"),
    ("GET", re.compile(r"^/me/calendar$"), "calendars.get"),
    ("GET", re.compile(r"^/me/calendars/(?P<cal>[^/]+)$"), "calendars.get"),
    ("GET", re.compile(rf"^{_EVENTS}$"), "events.list"),
    ("POST", re.compile(rf"^{_EVENTS}$"), "events.create"),
    ("GET", re.compile(rf"^{_EVENTS}/{_ID}/instances$"), "events.instances"),
    (
        "POST",
        re.compile(rf"^{_EVENTS}/{_ID}/(accept|decline|tentativelyAccept)$"),
        "events.respond",
    ),
    ("GET", re.compile(rf"^{_EVENTS}/{_ID}$"), "events.get"),
    ("PATCH", re.compile(rf"^{_EVENTS}/{_ID}$"), "events.update"),
    ("DELETE", re.compile(rf"^{_EVENTS}/{_ID}$"), "events.delete"),
    ("GET", re.compile(rf"^{_VIEW}/delta$"), "calendarView.delta"),
    ("GET", re.compile(rf"^{_VIEW}$"), "calendarView.list"),
    ("POST", re.compile(r"^/subscriptions$"), "subscriptions.create"),
    ("GET", re.compile(r"^/subscriptions$"), "subscriptions.list"),
    ("GET", re.compile(rf"^/subscriptions/{_ID}$"), "subscriptions.get"),
    ("PATCH", re.compile(rf"^/subscriptions/{_ID}$"), "subscriptions.update"),
    ("DELETE", re.compile(rf"^/subscriptions/{_ID}$"), "subscriptions.delete"),
    ("POST", re.compile(rf"^/subscriptions/{_ID}/reauthorize$"), "subscriptions.reauthorize"),
]
RESPONSES = {
    "accept": "accepted",
    "decline": "declined",
    "tentativelyAccept": "tentativelyAccepted",
}
EXTENDED_FILTER = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)/id\s+eq\s+"
    r"'(?P<id>(?:[^']|'')*)'(?:\s+and\s+(?P=v)/value\s+eq\s+'(?P<value>(?:[^']|'')*)')?\s*\)\s*$",
    re.IGNORECASE,
)
EXTENDED_EXPAND = re.compile(
    r"^\s*singleValueExtendedProperties(?:\(\s*\$filter\s*=\s*id\s+eq\s+"
    r"'(?P<id>(?:[^']|'')*)'\s*\))?\s*$",
    re.IGNORECASE,
)


@dataclass
class Call:
    """A routed request: Graph's operation name, path parameters, preferences and caller."""

    name: str
    groups: dict[str, str | None]
    ids: list[str]
    request: ApiRequest
    query: dict[str, str]
    prefs: Prefs
    mailbox: Mailbox

    def body(self) -> Resource:
        try:
            parsed = json.loads(self.request.body or b"{}")
        except ValueError:
            raise errors.bad_request("Unable to read JSON request payload.", "BadRequest") from None
        if not isinstance(parsed, dict):
            raise errors.bad_request("The request body must be a JSON object.")
        return parsed

    @property
    def calendar_id(self) -> str | None:
        return self.groups.get("cal")


def _prefs(headers: dict[str, str]) -> tuple[Prefs, list[str]]:
    prefer = headers.get("prefer", "")
    applied: list[str] = []
    zone_match = re.search(r'outlook\.timezone\s*=\s*"([^"]+)"', prefer, re.IGNORECASE)
    zone = zone_match.group(1) if zone_match else None
    if zone is not None:
        from calsync_server.emulators.microsoft.zones import UnknownZone, zone_info

        try:
            zone_info(zone)
            applied.append(f'outlook.timezone="{zone}"')
        except UnknownZone:
            zone = None  # Graph falls back to UTC for a zone it does not know
    immutable = bool(re.search(r'IdType\s*=\s*"ImmutableId"', prefer, re.IGNORECASE))
    if immutable:
        applied.append('IdType="ImmutableId"')
    size_match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer, re.IGNORECASE)
    size = int(size_match.group(1)) if size_match else None
    if size is not None:
        applied.append(f"odata.maxpagesize={size}")
    return Prefs(zone, immutable, size), applied


class GraphApi:
    def __init__(
        self,
        store: Store,
        stats: Stats,
        faults: Faults,
        throttle: Throttle,
        subscriptions: Subscriptions,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        # How a fault's delay is waited (the config's: a test's own sees or holds it).
        self.sleep = sleep
        self.stats = stats
        self.faults = faults
        self.throttle = throttle
        self.subscriptions = subscriptions
        self.delta = DeltaRounds(store)
        self.shuffle = random.Random(16)

    # ------------------------------------------------------------------------ plumbing

    def _error(self, exc: errors.GraphError, request_id: str, client_id: str) -> ApiResponse:
        body = exc.body_bytes(graph_time(self.store.now())[:19], request_id, client_id)
        headers = {"content-type": JSON_TYPE, "request-id": request_id, **exc.headers}
        headers["client-request-id"] = client_id
        return ApiResponse(exc.status, body, headers)

    async def handle(self, request: ApiRequest) -> ApiResponse:
        request_id = str(uuid.uuid4())
        client_id = request.headers.get("client-request-id") or request_id
        path = unquote(request.path)
        if not path.startswith("/v1.0/"):
            return self._error(
                errors.GraphError(404, "BadRequest", "Unknown API version."), request_id, client_id
            )
        path = path[len("/v1.0") :]
        if path == "/$batch":
            if request.method != "POST":
                return self._error(
                    errors.bad_request("Use POST for $batch."), request_id, client_id
                )
            return await self._batch(request)
        route = next(
            (
                (name, m)
                for method, pattern, name in ROUTES
                if method == request.method and (m := pattern.match(path))
            ),
            None,
        )
        if route is None:
            exc = errors.GraphError(
                400,
                "BadRequest",
                f"Resource not found for the segment '{path.strip('/').split('/')[-1]}'.",
            )
            return self._error(exc, request_id, client_id)
        name, match = route
        prefs, applied = _prefs(request.headers)
        try:
            mailbox = self.store.authenticate(request.headers.get("authorization"))
        except errors.GraphError as exc:
            return self._error(exc, request_id, client_id)
        try:
            self.throttle.enter(mailbox.oid)
        except errors.GraphError as exc:
            self.stats.call(name)
            return self._error(exc, request_id, client_id)
        try:
            self.stats.call(name)
            fault = self.faults.take(name)
            delay = fault.delay_ms / 1000 if fault is not None else 0.0
            if delay:
                # Held while slow, so a slow call keeps its concurrency slot as in Graph.
                await self.sleep(delay)
            if fault is not None and fault.drop_connection:
                return ApiResponse(0, drop=True)
            if fault is not None and fault.status >= 400:
                return self._error(
                    errors.injected(fault.status, fault.reason, fault.retry_after_s),
                    request_id,
                    client_id,
                )
            groups = match.groupdict()
            ids = [g for g in match.groups() if g is not None and g != groups.get("cal")]
            query = dict(request.query)
            call = Call(name, groups, ids, request, query, prefs, mailbox)
            answer = await self._dispatch(call)
        except errors.GraphError as exc:
            return self._error(exc, request_id, client_id)
        finally:
            self.throttle.leave(mailbox.oid)
        answer.headers.setdefault("request-id", request_id)
        answer.headers["client-request-id"] = client_id
        if applied:
            answer.headers["preference-applied"] = ", ".join(applied)
        return answer

    @staticmethod
    def _json(status: int, payload: Any) -> ApiResponse:
        return ApiResponse.json(status, payload, content_type=JSON_TYPE)

    def _link_base(self, call: Call) -> str:
        return f"{call.request.root_url}v1.0{unquote(call.request.path)[len('/v1.0') :]}"

    async def _dispatch(self, call: Call) -> ApiResponse:
        handler: Callable[[Call], Awaitable[ApiResponse]] = getattr(
            self, "_" + call.name.replace(".", "_")
        )
        return await handler(call)

    # ------------------------------------------------------------------------ me, calendars

    async def _me_get(self, call: Call) -> ApiResponse:
        m = call.mailbox
        given, _, surname = m.name.partition(" ")
        return self._json(
            200,
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                "id": m.oid,
                "displayName": m.name,
                "givenName": given,
                "surname": surname,
                "mail": m.email,
                "userPrincipalName": m.email,
                "jobTitle": None,
                "officeLocation": None,
                "preferredLanguage": "en-GB",
                "businessPhones": [],
                "mobilePhone": None,
            },
        )

    async def _me_mailboxSettings(self, call: Call) -> ApiResponse:
        return self._json(
            200,
            {
                "timeZone": call.mailbox.time_zone,
                "language": {"locale": "en-GB", "displayName": "English (United Kingdom)"},
                "workingHours": {
                    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    "startTime": "09:00:00.0000000",
                    "endTime": "17:30:00.0000000",
                    "timeZone": {"name": call.mailbox.time_zone},
                },
            },
        )

    async def _me_revokeSignInSessions(self, call: Call) -> ApiResponse:
        self.store.revoke_sessions(call.mailbox.oid)
        return self._json(200, {"value": True})

    async def _calendars_list(self, call: Call) -> ApiResponse:
        with self.store.lock:
            calendars = [self.store.calendars[c] for c in call.mailbox.calendars]
            value = [self.store.calendar_resource(call.mailbox, c) for c in calendars]
        return self._json(200, {"value": value})

    async def _calendars_create(self, call: Call) -> ApiResponse:
        name = call.body().get("name")
        if not isinstance(name, str) or not name.strip():
            raise errors.bad_request("The calendar needs a name.", "ErrorInvalidRequest")
        calendar = self.store.add_calendar(call.mailbox, name.strip(), can_edit=True)
        return self._json(201, self.store.calendar_resource(call.mailbox, calendar))

    async def _calendars_get(self, call: Call) -> ApiResponse:
        calendar = self.store.calendar(call.mailbox, call.calendar_id)
        return self._json(200, self.store.calendar_resource(call.mailbox, calendar))

    # ----------------------------------------------------------------------------- events

    def _render(self, call: Call, item: Item, expand: tuple[str, ...] | None = None) -> Resource:
        return self.store.render(item, call.prefs.zone, call.prefs.immutable, expand)

    def _expand(self, call: Call) -> tuple[str, ...] | None:
        value = call.query.get("$expand")
        if value is None:
            return None
        match = EXTENDED_EXPAND.match(value)
        if match is None:
            raise errors.bad_request(f"Parsing OData Select and Expand failed: {value}")
        wanted = match.group("id")
        return (wanted.replace("''", "'").strip().lower(),) if wanted else ()

    def _page(self, call: Call, values: list[Resource]) -> ApiResponse:
        """`$top`/`$skip` paging with an `@odata.nextLink`."""
        try:
            top = min(MAX_TOP, int(call.query.get("$top", DEFAULT_TOP)))
            skip = int(call.query.get("$skip", 0))
        except ValueError:
            raise errors.bad_request("$top and $skip must be integers.") from None
        page = values[skip : skip + top]
        answer: Resource = {"value": page}
        if skip + top < len(values):
            query = {**call.query, "$skip": str(skip + top), "$top": str(top)}
            answer["@odata.nextLink"] = f"{self._link_base(call)}?{urlencode(query)}"
        return self._json(200, answer)

    async def _events_list(self, call: Call) -> ApiResponse:
        calendar = self.store.calendar(call.mailbox, call.calendar_id)
        records = self.store.list_records(calendar)
        condition = call.query.get("$filter")
        if condition is not None:
            match = EXTENDED_FILTER.match(condition)
            if match is None:
                raise errors.bad_request(
                    f"Invalid filter clause: {condition}", "ErrorInvalidUrlQueryFilter"
                )
            key = match.group("id").replace("''", "'").strip().lower()
            value = match.group("value")
            wanted = value.replace("''", "'") if value is not None else None

            def has(extended: dict[str, str]) -> bool:
                return any(
                    k.lower() == key and (wanted is None or v == wanted)
                    for k, v in extended.items()
                )

            records = [r for r in records if has(r.extended)]
        expand = self._expand(call)
        values = [self._render(call, item_of(r), expand) for r in records]
        return self._page(call, values)

    async def _events_create(self, call: Call) -> ApiResponse:
        item, _ = self.store.create_event(call.mailbox, call.calendar_id, call.body())
        return self._json(201, self._render(call, item, self._expand(call)))

    async def _events_get(self, call: Call) -> ApiResponse:
        item = self.store.find(call.mailbox, call.ids[0], call.calendar_id)
        return self._json(200, self._render(call, item, self._expand(call)))

    async def _events_update(self, call: Call) -> ApiResponse:
        item = self.store.update_event(
            call.mailbox,
            call.ids[0],
            call.body(),
            calendar_id=call.calendar_id,
            if_match=call.request.headers.get("if-match"),
        )
        return self._json(200, self._render(call, item, self._expand(call)))

    async def _events_delete(self, call: Call) -> ApiResponse:
        self.store.delete_event(
            call.mailbox,
            call.ids[0],
            calendar_id=call.calendar_id,
            if_match=call.request.headers.get("if-match"),
        )
        return ApiResponse(204)

    async def _events_respond(self, call: Call) -> ApiResponse:
        self.store.respond(call.mailbox, call.ids[0], RESPONSES[call.ids[1]])
        return ApiResponse(202)

    async def _events_instances(self, call: Call) -> ApiResponse:
        begin, finish = parse_window(call.query.get("startDateTime"), call.query.get("endDateTime"))
        master = self.store.find(call.mailbox, call.ids[0], call.calendar_id)
        if master.kind != "seriesMaster":
            raise errors.bad_request(
                "The instances of an event exist only for a series master.", "ErrorInvalidRequest"
            )
        with self.store.lock:
            items = sorted(
                self.store.series_items(master.record, begin, finish), key=lambda i: i.start
            )
            values = [self._render(call, item) for item in items]
        return self._page(call, values)

    async def _calendarView_list(self, call: Call) -> ApiResponse:
        begin, finish = parse_window(call.query.get("startDateTime"), call.query.get("endDateTime"))
        calendar = self.store.calendar(call.mailbox, call.calendar_id)
        values = [self._render(call, i) for i in self.store.view_items(calendar, begin, finish)]
        return self._page(call, values)

    async def _calendarView_delta(self, call: Call) -> ApiResponse:
        base = self._link_base(call)
        if "$skiptoken" in call.query or "$deltatoken" in call.query:
            return self._json(200, self.delta.resume(call.mailbox, call.query, call.prefs, base))
        begin, finish = parse_window(call.query.get("startDateTime"), call.query.get("endDateTime"))
        calendar = self.store.calendar(call.mailbox, call.calendar_id)
        answer = self.delta.first(call.mailbox, calendar, begin, finish, call.prefs, base)
        return self._json(200, answer)

    # ---------------------------------------------------------------------- subscriptions

    async def _subscriptions_create(self, call: Call) -> ApiResponse:
        created = await self.subscriptions.create(call.mailbox, call.body(), call.prefs.immutable)
        return self._json(201, created)

    async def _subscriptions_list(self, call: Call) -> ApiResponse:
        return self._json(200, {"value": self.subscriptions.mine(call.mailbox)})

    async def _subscriptions_get(self, call: Call) -> ApiResponse:
        return self._json(200, self.subscriptions.get(call.mailbox, call.ids[0]))

    async def _subscriptions_update(self, call: Call) -> ApiResponse:
        return self._json(200, self.subscriptions.renew(call.mailbox, call.ids[0], call.body()))

    async def _subscriptions_delete(self, call: Call) -> ApiResponse:
        self.subscriptions.delete(call.mailbox, call.ids[0])
        return ApiResponse(204)

    async def _subscriptions_reauthorize(self, call: Call) -> ApiResponse:
        self.subscriptions.reauthorize(call.mailbox, call.ids[0])
        return ApiResponse(200)

    # ------------------------------------------------------------------------------ batch

    async def _batch(self, outer: ApiRequest) -> ApiResponse:
        """JSON batching: at most 20 requests with unique ids, each answered on its own
        (status, headers, body), in no particular order; `dependsOn` orders them."""
        request_id = str(uuid.uuid4())
        client_id = outer.headers.get("client-request-id") or request_id
        self.stats.call("$batch")
        try:
            parsed = json.loads(outer.body or b"{}")
        except ValueError:
            parsed = None
        requests = parsed.get("requests") if isinstance(parsed, dict) else None
        if not isinstance(requests, list) or not requests:
            return self._error(
                errors.bad_request("Invalid batch payload format."), request_id, client_id
            )
        if len(requests) > MAX_BATCH:
            exc = errors.bad_request(
                f"The number of requests in a batch exceeds the limit of {MAX_BATCH}."
            )
            return self._error(exc, request_id, client_id)
        ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            return self._error(
                errors.bad_request("Batch request ids must be present and unique."),
                request_id,
                client_id,
            )
        done: dict[str, asyncio.Future[int]] = {
            str(i): asyncio.get_running_loop().create_future() for i in ids
        }

        async def run(entry: dict[str, Any]) -> Resource:
            item_id = str(entry["id"])
            depends = entry.get("dependsOn") or []
            statuses = [await done[d] for d in depends if d in done]
            if any(s >= 400 for s in statuses):
                answer = ApiResponse(
                    424,
                    json.dumps(
                        {
                            "error": {
                                "code": "FailedDependency",
                                "message": "A request it depends on failed.",
                            }
                        }
                    ).encode(),
                    {"content-type": JSON_TYPE},
                )
            else:
                answer = await self.handle(self._inner(outer, entry))
            if answer.drop:
                answer = self._error(errors.injected(504, None), request_id, client_id)
            done[item_id].set_result(answer.status)
            headers = {
                k: v
                for k, v in answer.headers.items()
                if k not in ("request-id", "client-request-id")
            }
            result: Resource = {"id": item_id, "status": answer.status, "headers": headers}
            if answer.body:
                body_text = answer.body.decode()
                result["body"] = (
                    json.loads(body_text)
                    if answer.headers.get("content-type", "").startswith("application/json")
                    else body_text
                )
            return result

        answers = list(await asyncio.gather(*(run(r) for r in requests)))
        # Graph answers in whatever order items finish: clients must match answers by id.
        order = list(answers)
        self.shuffle.shuffle(order)
        if len(order) > 1 and [a["id"] for a in order] == ids:
            order = order[1:] + order[:1]
        return self._json(200, {"responses": order})

    @staticmethod
    def _inner(outer: ApiRequest, entry: dict[str, Any]) -> ApiRequest:
        url = str(entry.get("url") or "")
        if not url.startswith("/"):
            url = "/" + url
        split = urlsplit(url)
        headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
        for name in ("authorization", "prefer", "client-request-id"):
            if name not in headers and name in outer.headers:
                headers[name] = outer.headers[name]
        body = entry.get("body")
        return ApiRequest(
            method=str(entry.get("method") or "GET").upper(),
            path="/v1.0" + split.path,
            query=parse_qsl(split.query, keep_blank_values=True),
            headers=headers,
            body=json.dumps(body).encode() if body is not None else b"",
            root_url=outer.root_url,
        )
