"""The person's hands in a real CalDAV server (Radicale, or the stricter Xandikos).

The server runs inside the test process on a free port, in a temporary folder, with a small
fault-injecting proxy in front (tests/support/fault_proxy.py): calsync's provider talks to the
proxy, the person (this driver) talks to the server directly with plain HTTP, never through
calsync's provider code.

Choices worth knowing: an expired cursor is the proxy swapping the sync token for one the
server never issued, so the server refuses it in its own words (Radicale 403
valid-sync-token, Xandikos 412); a read-only calendar is the proxy refusing writes to it and
reporting read privileges only (neither server can make one calendar of an owner read-only);
Xandikos has no login of its own, so the proxy checks the password in front of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import icalendar
import recurring_ical_events  # type: ignore[import-untyped]

from calsync_server.providers.caldav import CalDAVProvider
from calsync_server.providers.credentials import CalDAVPassword
from calsync_server.providers.model import ErrorKind
from tests.support.drivers.base import Login, PersonEvent
from tests.support.fault_proxy import FaultProxy

Kind = Literal["radicale", "xandikos"]
PASSWORD = "correct horse"

_FAULT_STATUS = {
    ErrorKind.TRANSIENT: 503,
    ErrorKind.AUTH: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.GONE: 404,
    ErrorKind.STALE: 412,
    ErrorKind.EXISTS: 412,
    ErrorKind.INVALID: 400,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CalDAVServer:
    """A real CalDAV server on a free port with the fault proxy in front of it."""

    def __init__(self, kind: Kind, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.username = "alice@example.com"
        self.password = PASSWORD
        self._stop: Any = None
        port = free_port()
        if kind == "radicale":
            self._start_radicale(port)
            self.home_path = f"/{self.username}/"
        else:
            self._start_xandikos(port)
            self.home_path = "/alice/calendars/"
        self.upstream = f"http://127.0.0.1:{port}"
        self.proxy = FaultProxy(self.upstream)
        if kind == "xandikos":
            self.proxy.state.login = (self.username, self.password)
        self.url = self.proxy.url + "/"
        self.http = httpx.Client(
            base_url=self.upstream, auth=(self.username, self.password), timeout=30
        )
        self._wait_ready()

    def _start_radicale(self, port: int) -> None:
        import radicale.config
        import radicale.server

        users = self.root / "users"
        users.write_text(f"{self.username}:{PASSWORD}\n")
        config = radicale.config.load()
        config.update(
            {
                "server": {"hosts": f"127.0.0.1:{port}"},
                "storage": {"filesystem_folder": str(self.root / "store")},
                "auth": {
                    "type": "htpasswd",
                    "htpasswd_filename": str(users),
                    "htpasswd_encryption": "plain",
                },
            },
            "calsync tests",
        )
        stop, stop_out = socket.socketpair()
        thread = threading.Thread(
            target=radicale.server.serve, args=(config, stop_out), daemon=True
        )
        thread.start()

        def halt() -> None:
            stop.close()
            thread.join(timeout=5)
            stop_out.close()

        self._stop = halt

    def _start_xandikos(self, port: int) -> None:
        from aiohttp import web
        from xandikos.web import SingleUserFilesystemBackend, XandikosApp

        backend = SingleUserFilesystemBackend(str(self.root), default_email=self.username)
        backend.create_principal("/alice/", create_defaults=False)  # type: ignore[no-untyped-call]
        app = XandikosApp(backend, current_user_principal="/alice/", strict=True)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await app.aiohttp_handler(request, "/")  # type: ignore[no-untyped-call,no-any-return]

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        runner_box: list[web.AppRunner] = []

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def start() -> None:
                web_app = web.Application()
                web_app.router.add_route("*", "/{path_info:.*}", handle)
                runner = web.AppRunner(web_app)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                runner_box.append(runner)

            loop.run_until_complete(start())
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        ready.wait(10)

        def halt() -> None:
            if runner_box:
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)

        self._stop = halt

    def _wait_ready(self) -> None:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while True:
            try:
                self.http.request("OPTIONS", "/")
                return
            except httpx.TransportError:
                if datetime.now(UTC) > deadline:
                    raise
                threading.Event().wait(0.02)

    def reset(self) -> None:
        """Between tests sharing the server: no pending faults, the login works again."""
        with self.proxy.lock:
            state = self.proxy.state
            state.faults.clear()
            state.refuse_login = False
            state.icloud_sync = False
            state.root_not_dav = None
            state.home_elsewhere = None
            state.refuse_sync = None
            state.hide_sync_token = False
            state.log.clear()

    def close(self) -> None:
        self.http.close()
        self.proxy.close()
        if self._stop is not None:
            self._stop()


@contextlib.contextmanager
def caldav_server(kind: Kind, root: Path) -> Iterator[CalDAVServer]:
    server = CalDAVServer(kind, root)
    try:
        yield server
    finally:
        server.close()


class CalDAVDriver:
    """One CalDAV account of one person (a Driver)."""

    name = "caldav"

    def __init__(self, server: CalDAVServer) -> None:
        self.server = server
        self.http = server.http
        server.reset()

    # -- calsync's side ------------------------------------------------------------------------

    def provider(self, *, sleep: Callable[[float], None] = time.sleep) -> CalDAVProvider:
        return CalDAVProvider(
            self.server.url, self.server.username, self.server.password, sleep=sleep
        )

    def login(self, calendar_id: str) -> Login:
        """One account holds every calendar the driver makes (the server's one user)."""
        server = self.server
        return Login(
            "caldav",
            server.username,
            CalDAVPassword(url=server.url, username=server.username, password=server.password),
        )

    def calendar_url(self, path: str) -> str:
        return self.server.proxy.url + path

    def path_of(self, calendar_id: str) -> str:
        return calendar_id.removeprefix(self.server.proxy.url)

    # -- the person's side ---------------------------------------------------------------------

    def new_calendar(self, name: str, *, read_only: bool = False) -> str:
        path = f"{self.server.home_path}{uuid.uuid4().hex[:12]}/"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{name}</D:displayname>"
            "</D:prop></D:set></C:mkcalendar>"
        )
        reply = self.http.request(
            "MKCALENDAR", path, content=body, headers={"Content-Type": "application/xml"}
        )
        assert reply.status_code == 201, (reply.status_code, reply.text)
        if read_only:
            self.server.proxy.make_read_only(path)
        return self.calendar_url(path)

    def add(self, calendar_id: str, event: PersonEvent) -> str:
        name = f"{uuid.uuid4().hex}.ics"
        vevent = icalendar.Event()
        vevent.add("UID", f"{uuid.uuid4()}@person.example")
        vevent.add("DTSTAMP", datetime.now(UTC))
        vevent.add("DTSTART", event.start)
        vevent.add("DTEND", event.end)
        vevent.add("SUMMARY", event.title)
        if event.free:
            vevent.add("TRANSP", "TRANSPARENT")
        if event.cancelled:
            vevent.add("STATUS", "CANCELLED")
        if event.declined or event.tentative or event.attendees:
            vevent.add("ORGANIZER", "mailto:boss@example.org")
            for address in event.attendees:
                vevent.add("ATTENDEE", icalendar.vCalAddress(f"mailto:{address}"))
        if event.declined or event.tentative:
            attendee = icalendar.vCalAddress(f"mailto:{self.server.username}")
            attendee.params["PARTSTAT"] = "DECLINED" if event.declined else "TENTATIVE"
            vevent.add("ATTENDEE", attendee)
        if event.recurrence:
            vevent.add("RRULE", icalendar.vRecur.from_ical(event.recurrence))
        cal = _calendar(vevent)
        self._put(calendar_id, name, cal)
        return name

    def put_ics(self, calendar_id: str, name: str, text: str) -> str:
        """Store a resource as the person's client would write it; its ETag."""
        reply = self.http.put(
            self._path(calendar_id, name),
            content=text.encode(),
            headers={"Content-Type": "text/calendar; charset=utf-8"},
        )
        assert reply.status_code in (200, 201, 204), (reply.status_code, reply.text)
        return str(reply.headers.get("ETag", ""))

    def move(self, calendar_id: str, event_id: str, start: datetime, end: datetime) -> None:
        name, cal = self._get(calendar_id, event_id)
        master = _master(cal)
        for prop, value in (("DTSTART", start), ("DTEND", end)):
            master.pop(prop, None)
            master.add(prop, value)
        self._put(calendar_id, name, cal)

    def retitle(self, calendar_id: str, event_id: str, title: str) -> None:
        name, cal = self._get(calendar_id, event_id)
        master = _master(cal)
        master.pop("SUMMARY", None)
        master.add("SUMMARY", title)
        self._put(calendar_id, name, cal)

    def delete(self, calendar_id: str, event_id: str) -> None:
        if "#" in event_id:  # an occurrence of a series: the person deletes "this one only"
            name, rid = event_id.split("#", 1)
            self.cancel_occurrence(
                calendar_id, name, datetime.strptime(rid, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            )
            return
        reply = self.http.delete(self._path(calendar_id, event_id))
        assert reply.status_code in (200, 204, 404), reply.status_code

    def cancel_occurrence(self, calendar_id: str, series_id: str, start: datetime) -> None:
        name, cal = self._get(calendar_id, series_id)
        master = _master(cal)
        dtstart: Any = master["DTSTART"]
        first: Any = dtstart.dt
        zone = first.tzinfo
        master.add("EXDATE", start.astimezone(zone) if zone is not None else start)
        self._put(calendar_id, name, cal)

    def move_occurrence(
        self,
        calendar_id: str,
        series_id: str,
        start: datetime,
        new_start: datetime,
        new_end: datetime,
    ) -> None:
        """An override (RECURRENCE-ID) in the series' resource, as a client writes "this one"."""
        name, cal = self._get(calendar_id, series_id)
        master = _master(cal)
        dtstart: Any = master["DTSTART"]
        zone = dtstart.dt.tzinfo
        override = icalendar.Event()
        override.add("UID", master["UID"])
        override.add("DTSTAMP", datetime.now(UTC))
        override.add("RECURRENCE-ID", start.astimezone(zone) if zone is not None else start)
        override.add("DTSTART", new_start)
        override.add("DTEND", new_end)
        override.add("SUMMARY", master.get("SUMMARY", ""))
        cal.add_component(override)
        self._put(calendar_id, name, cal)

    def events(self, calendar_id: str) -> list[dict[str, object]]:
        now = datetime.now(UTC)
        out: list[dict[str, object]] = []
        for href, etag, text in self.resources(calendar_id):
            cal = icalendar.Calendar.from_ical(text)
            for vevent in recurring_ical_events.of(cal).between(
                now - timedelta(days=400), now + timedelta(days=800)
            ):
                mark = vevent.get("X-CALSYNC-SOURCE")
                out.append(
                    {
                        "id": href.rstrip("/").rsplit("/", 1)[-1],
                        "title": str(vevent.get("SUMMARY", "")),
                        "start": vevent["DTSTART"].dt,
                        "end": vevent["DTEND"].dt,
                        "mark": str(mark) if mark is not None else None,
                        "etag": etag,
                        "ics": text,
                    }
                )
        return out

    def resources(self, calendar_id: str) -> list[tuple[str, str, str]]:
        """(href, etag, iCalendar text) of every resource in the calendar."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
            '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
        )
        reply = self.http.request(
            "REPORT",
            self.path_of(calendar_id),
            content=body,
            headers={"Depth": "1", "Content-Type": "application/xml"},
        )
        assert reply.status_code == 207, (reply.status_code, reply.text)
        from lxml import etree  # type: ignore[import-untyped]

        tree = etree.fromstring(reply.content)
        found = []
        for response in tree.iter("{DAV:}response"):
            data = response.findtext(".//{urn:ietf:params:xml:ns:caldav}calendar-data")
            if data:
                found.append(
                    (
                        response.findtext("{DAV:}href") or "",
                        response.findtext(".//{DAV:}getetag") or "",
                        data,
                    )
                )
        return found

    def get_ics(self, calendar_id: str, name: str) -> tuple[str, str]:
        """(text, ETag) of one resource, byte for byte as the server holds it."""
        reply = self.http.get(self._path(calendar_id, name))
        assert reply.status_code == 200, reply.status_code
        return reply.text, reply.headers.get("ETag", "")

    # -- the provider's bad days ---------------------------------------------------------------

    def expire_cursor(self, calendar_id: str) -> None:
        self.server.proxy.expire_tokens(self.path_of(calendar_id))

    def fail_next(self, kind: ErrorKind, *, times: int = 1, retry_after: float = 0) -> None:
        if kind is ErrorKind.CURSOR_EXPIRED:
            raise NotImplementedError("use expire_cursor")
        status = _FAULT_STATUS[kind]
        self.server.proxy.fail_next(
            status,
            times=times,
            retry_after=math.ceil(retry_after) if kind is ErrorKind.TRANSIENT else None,
        )

    def refuse_login(self) -> None:
        with self.server.proxy.lock:
            self.server.proxy.state.refuse_login = True

    # -- helpers -------------------------------------------------------------------------------

    def _path(self, calendar_id: str, name: str) -> str:
        return self.path_of(calendar_id) + quote(name)

    def _get(self, calendar_id: str, event_id: str) -> tuple[str, icalendar.Calendar]:
        name = event_id.split("#", 1)[0]
        text, _ = self.get_ics(calendar_id, name)
        return name, icalendar.Calendar.from_ical(text)

    def _put(self, calendar_id: str, name: str, cal: icalendar.Calendar) -> None:
        self.put_ics(calendar_id, name, cal.to_ical().decode())


def _calendar(*components: icalendar.Component) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", "-//the person's calendar app//EN")
    for component in components:
        cal.add_component(component)
    cal.add_missing_timezones()
    return cal


def _master(cal: icalendar.Calendar) -> icalendar.Component:
    for component in cal.walk("VEVENT"):
        if "RECURRENCE-ID" not in component:
            return component
    raise AssertionError("no master event")
