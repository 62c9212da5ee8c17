"""Calendar API v3 routes, transport-free so plain requests and batch parts share one path."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from calsync_server.emulators.common.api import JSON_TYPE, ApiRequest, ApiResponse
from calsync_server.emulators.common.faults import Faults, Stats
from calsync_server.emulators.google import errors
from calsync_server.emulators.google.push import PushManager
from calsync_server.emulators.google.quota import Quota
from calsync_server.emulators.google.recurrence import parse_rfc3339
from calsync_server.emulators.google.store import ListQuery, Resource, Store, Window

# With a syncToken Google refuses these: the token already fixes the question.
FORBIDDEN_WITH_SYNC_TOKEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)


def error_response(exc: errors.GoogleError) -> ApiResponse:
    """Google's error answer: its JSON error body, and `Retry-After` where it says one."""
    return ApiResponse(exc.code, exc.body_bytes(), {"content-type": JSON_TYPE, **exc.headers})


@dataclass
class Call:
    """A routed request: the method name Google gives it, and the decoded path parameters."""

    name: str
    params: list[str]
    request: ApiRequest
    user: str = ""

    def arg(self, key: str) -> str | None:
        for name, value in self.request.query:
            if name == key:
                return value
        return None

    def args(self, key: str) -> list[str]:
        return [value for name, value in self.request.query if name == key]

    def flag(self, key: str) -> bool:
        value = self.arg(key)
        if value is None:
            return False
        if value not in ("true", "false"):
            raise errors.invalid(f"Invalid boolean value: '{value}'", key)
        return value == "true"

    def body(self) -> Resource:
        try:
            parsed = json.loads(self.request.body or b"{}")
        except ValueError:
            raise errors.GoogleError(400, "parseError", "Parse Error") from None
        if not isinstance(parsed, dict):
            raise errors.GoogleError(400, "parseError", "Parse Error")
        return parsed


Handler = Callable[["CalendarApi", Call], ApiResponse]
_SEGMENT = "([^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/calendar/v3/users/me/calendarList$"), "calendarList.list"),
    ("GET", re.compile(rf"^/calendar/v3/users/me/calendarList/{_SEGMENT}$"), "calendarList.get"),
    ("GET", re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}$"), "calendars.get"),
    ("GET", re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events$"), "events.list"),
    ("POST", re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events$"), "events.insert"),
    ("POST", re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events/watch$"), "events.watch"),
    (
        "GET",
        re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events/{_SEGMENT}/instances$"),
        "events.instances",
    ),
    ("GET", re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events/{_SEGMENT}$"), "events.get"),
    ("PUT", re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events/{_SEGMENT}$"), "events.update"),
    (
        "PATCH",
        re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events/{_SEGMENT}$"),
        "events.patch",
    ),
    (
        "DELETE",
        re.compile(rf"^/calendar/v3/calendars/{_SEGMENT}/events/{_SEGMENT}$"),
        "events.delete",
    ),
    ("POST", re.compile(r"^/calendar/v3/channels/stop$"), "channels.stop"),
]


def route(method: str, path: str) -> tuple[str, list[str]] | None:
    for verb, pattern, name in _ROUTES:
        if verb != method:
            continue
        match = pattern.match(path)
        if match:
            return name, [unquote(part) for part in match.groups()]
    return None


class CalendarApi:
    """Answers Calendar v3 requests: routing, call counting, faults, auth, quota, handlers."""

    def __init__(
        self, store: Store, stats: Stats, faults: Faults, quota: Quota, push: PushManager
    ) -> None:
        self.store = store
        self.stats = stats
        self.faults = faults
        self.quota = quota
        self.push = push

    def handle(self, request: ApiRequest) -> ApiResponse:
        routed = route(request.method.upper(), request.path)
        if routed is None:
            return error_response(errors.not_found())
        name, params = routed
        self.stats.call(name)
        # Calendar routes name the calendar first ("primary" stays as the client wrote it).
        about = params[0] if params and name.startswith(("events.", "calendar")) else None
        fault = self.faults.take(name, about)
        delay = fault.delay_ms / 1000 if fault else 0.0
        if fault is not None and fault.drop_connection:
            return ApiResponse(0, drop=True, delay_s=delay)
        if fault is not None and fault.status >= 400:
            response = error_response(errors.injected(fault.status, fault.reason))
            if fault.retry_after_s is not None:
                response.headers["retry-after"] = str(fault.retry_after_s)
            response.delay_s = delay
            return response
        call = Call(name, params, request)
        try:
            call.user = self.store.authenticate(request.headers.get("authorization"))
            self.quota.check(call.user)
            response = _HANDLERS[name](self, call)
        except errors.GoogleError as exc:
            response = error_response(exc)
        response.delay_s = delay
        return response

    # ---------------------------------------------------------------------------- handlers

    def calendar_list_list(self, call: Call) -> ApiResponse:
        with self.store.lock:
            items = [
                self.store.calendar_list_entry(calendar, role, call.user)
                for calendar, role in self.store.calendar_list(call.user)
            ]
        min_role = call.arg("minAccessRole")
        if min_role is not None:
            order = ["freeBusyReader", "reader", "writer", "owner"]
            if min_role not in order:
                raise errors.invalid("Invalid minAccessRole.", "minAccessRole")
            items = [i for i in items if order.index(i["accessRole"]) >= order.index(min_role)]
        return ApiResponse.json(
            200,
            {
                "kind": "calendar#calendarList",
                "etag": f'"p{abs(hash(tuple(i["etag"] for i in items))) % 10**15}"',
                "nextSyncToken": "calendarList",
                "items": items,
            },
        )

    def calendar_list_get(self, call: Call) -> ApiResponse:
        with self.store.lock:
            calendar, role = self.store.resolve_calendar(call.user, call.params[0])
            entry = self.store.calendar_list_entry(calendar, role, call.user)
        return ApiResponse.json(200, entry)

    def calendars_get(self, call: Call) -> ApiResponse:
        with self.store.lock:
            calendar, _ = self.store.resolve_calendar(call.user, call.params[0])
            resource = self.store.calendar_resource(calendar)
        return ApiResponse.json(200, resource)

    def _list_query(self, call: Call) -> ListQuery:
        sync_token = call.arg("syncToken")
        if sync_token is not None:
            for name in FORBIDDEN_WITH_SYNC_TOKEN:
                if call.arg(name) is not None:
                    raise errors.invalid(
                        f"The parameter {name} cannot be used together with syncToken.", name
                    )
        max_results = 250
        raw_max = call.arg("maxResults")
        if raw_max is not None:
            try:
                max_results = int(raw_max)
            except ValueError:
                raise errors.invalid(f"Invalid value '{raw_max}'.", "maxResults") from None
            if max_results < 1:
                raise errors.invalid(f"Invalid value '{raw_max}'.", "maxResults")
            max_results = min(max_results, 2500)
        time_min = call.arg("timeMin")
        time_max = call.arg("timeMax")
        window = Window(
            parse_rfc3339(time_min, "timeMin") if time_min else None,
            parse_rfc3339(time_max, "timeMax") if time_max else None,
        )
        if (
            window.time_min is not None
            and window.time_max is not None
            and window.time_max <= window.time_min
        ):
            raise errors.GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
        single_events = call.flag("singleEvents")
        order_by = call.arg("orderBy")
        if order_by not in (None, "startTime", "updated"):
            raise errors.invalid(f"Invalid value '{order_by}'.", "orderBy")
        if order_by == "startTime" and not single_events:
            raise errors.invalid(
                "The requested ordering is not available for the particular query.", "orderBy"
            )
        updated_min = call.arg("updatedMin")

        def pairs(key: str) -> tuple[tuple[str, str], ...]:
            found = []
            for item in call.args(key):
                name, sep, value = item.partition("=")
                if not sep:
                    raise errors.invalid(f"Invalid value '{item}'.", key)
                found.append((name, value))
            return tuple(found)

        event_types = tuple(call.args("eventTypes")) or None
        return ListQuery(
            single_events=single_events,
            show_deleted=call.flag("showDeleted"),
            window=window,
            event_types=event_types,
            private_properties=pairs("privateExtendedProperty"),
            shared_properties=pairs("sharedExtendedProperty"),
            q=call.arg("q"),
            ical_uid=call.arg("iCalUID"),
            updated_min=parse_rfc3339(updated_min, "updatedMin") if updated_min else None,
            order_by=order_by,
            max_results=max_results,
            page_token=call.arg("pageToken"),
            sync_token=sync_token,
        )

    def events_list(self, call: Call) -> ApiResponse:
        query = self._list_query(call)
        return ApiResponse.json(200, self.store.list_events(call.user, call.params[0], query))

    def events_instances(self, call: Call) -> ApiResponse:
        query = self._list_query(call)
        body = self.store.list_instances(call.user, call.params[0], call.params[1], query)
        return ApiResponse.json(200, body)

    def events_get(self, call: Call) -> ApiResponse:
        resource = self.store.get_event(call.user, call.params[0], call.params[1])
        etag = str(resource["etag"])
        if call.request.headers.get("if-none-match", "").strip() == etag:
            return ApiResponse(304, b"", {"etag": etag})
        return ApiResponse.json(200, resource, {"etag": etag})

    def _check_send_updates(self, call: Call) -> None:
        value = call.arg("sendUpdates")
        if value is not None and value not in ("all", "externalOnly", "none"):
            raise errors.invalid(f"Invalid value '{value}'.", "sendUpdates")

    def events_insert(self, call: Call) -> ApiResponse:
        self._check_send_updates(call)
        resource = self.store.insert_event(call.user, call.params[0], call.body())
        return ApiResponse.json(200, resource, {"etag": str(resource["etag"])})

    def _update(self, call: Call, patch: bool) -> ApiResponse:
        self._check_send_updates(call)
        resource = self.store.update_event(
            call.user,
            call.params[0],
            call.params[1],
            call.body(),
            patch=patch,
            if_match=call.request.headers.get("if-match"),
        )
        return ApiResponse.json(200, resource, {"etag": str(resource["etag"])})

    def events_update(self, call: Call) -> ApiResponse:
        return self._update(call, patch=False)

    def events_patch(self, call: Call) -> ApiResponse:
        return self._update(call, patch=True)

    def events_delete(self, call: Call) -> ApiResponse:
        self._check_send_updates(call)
        self.store.delete_event(
            call.user,
            call.params[0],
            call.params[1],
            if_match=call.request.headers.get("if-match"),
        )
        return ApiResponse(204)

    def events_watch(self, call: Call) -> ApiResponse:
        body = call.body()
        with self.store.lock:
            calendar, _ = self.store.resolve_calendar(call.user, call.params[0])
            calendar_id = calendar.id
        answer = self.push.watch(call.user, calendar_id, body, call.request.root_url)
        return ApiResponse.json(200, answer)

    def channels_stop(self, call: Call) -> ApiResponse:
        self.push.stop(call.body())
        return ApiResponse(204)


_HANDLERS: dict[str, Handler] = {
    "calendarList.list": CalendarApi.calendar_list_list,
    "calendarList.get": CalendarApi.calendar_list_get,
    "calendars.get": CalendarApi.calendars_get,
    "events.list": CalendarApi.events_list,
    "events.instances": CalendarApi.events_instances,
    "events.get": CalendarApi.events_get,
    "events.insert": CalendarApi.events_insert,
    "events.update": CalendarApi.events_update,
    "events.patch": CalendarApi.events_patch,
    "events.delete": CalendarApi.events_delete,
    "events.watch": CalendarApi.events_watch,
    "channels.stop": CalendarApi.channels_stop,
}
