"""CalDAV requests through python-caldav's client: retries, error kinds, discovery, calendars.

The library's DAVClient holds the session, the login and the XML parsing; this module decides
what each answer means to calsync (an ErrorKind), retries the transient ones honouring
Retry-After, and finds the account's calendars from a server URL (RFC 6764 well-known,
current-user-principal, calendar-home-set, wherever that lives: iCloud's partition hosts).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from caldav.davclient import DAVClient
from caldav.lib import error as dav_error
from caldav.response import DAVResponse

from calsync_server.providers.model import CallStats, ErrorKind, ProviderCalendar, ProviderError
from calsync_server.providers.retry import retry_after_seconds

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"
APPLE = "{http://apple.com/ns/ical/}"
VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"

XML_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}

PRINCIPAL_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'
)
HOME_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    "<C:calendar-home-set/><C:calendar-user-address-set/></D:prop></D:propfind>"
)
CALENDARS_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:A="http://apple.com/ns/ical/"><D:prop>'
    "<D:resourcetype/><D:displayname/><A:calendar-color/><C:calendar-timezone/>"
    "<C:supported-calendar-component-set/><D:current-user-privilege-set/>"
    "</D:prop></D:propfind>"
)
CS = "{http://calendarserver.org/ns/}"
# What a first read asks of a calendar: its sync-token (RFC 6578), and CalendarServer's ctag
# for a server without one (it changes whenever anything in the calendar does).
STATE_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>'
    "<D:sync-token/><CS:getctag/></D:prop></D:propfind>"
)
CTAG_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop>'
    "<CS:getctag/></D:prop></D:propfind>"
)

# How servers without sync-collection refuse the REPORT: SabreDAV without its sync plugin 415,
# others 501 or 405; a 403 or 400 with DAV:supported-report (RFC 3253) says it in words.
SYNC_UNSUPPORTED_STATUSES = frozenset({405, 415, 501})

# Statuses worth another try: the server or the way to it is having a bad moment.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
WRITE_PRIVILEGES = frozenset({"all", "write", "write-content", "bind"})


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its status, headers (names in lower case) and body, and the parsed XML
    where there is some."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    dav: DAVResponse | None = None

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")


@dataclass(frozen=True, slots=True)
class Home:
    """Where the account's calendars live and who it is (its addresses, for its own PARTSTAT)."""

    principal: str
    calendar_home: str
    addresses: frozenset[str]


class SyncUnsupported(Exception):
    """The server refuses the sync-collection REPORT: the calendar is read by its ctag instead.
    Only the CalDAV provider sees it (no ErrorKind: nothing past the provider has to act)."""


def absolute(base: str, href: str) -> str:
    """An href as an absolute URL (iCloud answers with absolute URLs on partition hosts)."""
    return urljoin(base, href.strip())


def same_path(a: str, b: str) -> bool:
    return unquote(urlsplit(a).path).rstrip("/") == unquote(urlsplit(b).path).rstrip("/")


class CalDAVClient:
    """One account's requests; every call is counted in ``stats`` (attempts and retries too)."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        stats: CallStats,
        home: Home | None = None,
        timeout: float = 30.0,
        max_tries: int = 4,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # A bare host ("https://caldav.icloud.com") is its root.
        self.url = url if urlsplit(url).path else url + "/"
        self.username = username
        self.stats = stats
        self.max_tries = max_tries
        self.max_wait = max_wait
        self.sleep = sleep
        # An HTTP-date Retry-After counts from this clock's now (the library's own parse
        # counts from the wall's).
        self.clock = clock
        # Basic from the first request: every CalDAV service calsync targets takes it, and it
        # saves the unauthenticated round trip the library would otherwise make first.
        self.dav = DAVClient(
            url=self.url,
            username=username,
            password=password,
            auth_type="basic",
            timeout=int(timeout),
            enable_rfc6764=False,
        )
        # Where discovery found the calendars at sign-in (kept in the login): later syncs
        # start from it and discover again only when it no longer answers.
        self._home: Home | None = home
        self.discovered = False

    def close(self) -> None:
        self.dav.close()

    # -- requests ------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        *,
        sync: bool = False,
    ) -> Reply:
        """One request, retried while it fails transiently; 401 is AUTH at once, 403 FORBIDDEN
        (or CURSOR_EXPIRED when the server says the sync token is invalid). Any other status
        is the caller's to read. ``sync`` marks a sync-collection REPORT, whose expired-token
        answers differ between servers (Radicale 403, Xandikos 412 or 500)."""
        self.stats.calls += 1
        attempt = 0
        while True:
            attempt += 1
            self.stats.requests += 1
            wait: float | None = None
            try:
                reply = self._once(method, url, body, headers)
            except dav_error.RateLimitError as exc:
                status = exc.status or 429
                wait = retry_after_seconds(exc.retry_after, self.clock())
                failure = ProviderError(
                    ErrorKind.TRANSIENT, f"{method} answered {status}", retry_after=wait
                )
                self.stats.note(f"retried after {status}")
            except dav_error.AuthorizationError as exc:
                raise self._refused(method, exc, sync=sync) from exc
            except OSError as exc:  # niquests' connection errors and timeouts are OSErrors
                failure = ProviderError(ErrorKind.TRANSIENT, f"{method}: {exc.__class__.__name__}")
                self.stats.note("retried after a connection error")
            else:
                if sync and _cursor_refused(reply):
                    raise ProviderError(ErrorKind.CURSOR_EXPIRED, "the sync token is invalid")
                if sync and _sync_unsupported(reply.status, reply.body):
                    raise SyncUnsupported(f"sync-collection answered {reply.status}")
                if reply.status not in TRANSIENT_STATUSES:
                    return reply
                wait = retry_after_seconds(reply.headers.get("retry-after"), self.clock())
                failure = ProviderError(
                    ErrorKind.TRANSIENT, f"{method} answered {reply.status}", retry_after=wait
                )
                self.stats.note(f"retried after {reply.status}")
            if attempt >= self.max_tries or (wait is not None and wait > self.max_wait):
                raise failure
            self.stats.retries += 1
            if wait is None:
                wait = min(self.max_wait, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            self.sleep(wait)

    def _once(self, method: str, url: str, body: str, headers: Mapping[str, str] | None) -> Reply:
        response = self.dav.request(url, method, body, dict(headers or {}))
        raw = response._raw_body or (
            response._raw.encode() if isinstance(response._raw, str) else bytes(response._raw)
        )
        return Reply(
            status=response.status,
            headers={k.lower(): v for k, v in (response.headers or {}).items()},
            body=raw,
            dav=response if response.tree is not None else None,
        )

    def _refused(
        self, method: str, exc: dav_error.AuthorizationError, *, sync: bool
    ) -> ProviderError | SyncUnsupported:
        if exc.status == 403 and VALID_SYNC_TOKEN in exc.preconditions:
            return ProviderError(ErrorKind.CURSOR_EXPIRED, "the sync token is no longer valid")
        if exc.status == 403 and sync:
            # A REPORT refused on a calendar the login reads: a server without sync-collection
            # (when it is a real refusal, the ctag read that follows gets it again, and says so).
            return SyncUnsupported(f"sync-collection refused: {exc.reason}")
        if exc.status == 403:
            return ProviderError(ErrorKind.FORBIDDEN, f"{method} refused: {exc.reason}")
        return ProviderError(ErrorKind.AUTH, f"the server refused the login ({exc.reason})")

    def propfind(self, url: str, body: str, depth: int) -> Reply:
        return self.send("PROPFIND", url, body, {**XML_HEADERS, "Depth": str(depth)})

    def report(self, url: str, body: str, depth: int, *, sync: bool = False) -> Reply:
        return self.send("REPORT", url, body, {**XML_HEADERS, "Depth": str(depth)}, sync=sync)

    # -- discovery -----------------------------------------------------------------------------

    def home(self) -> Home:
        """The principal and calendar home: the one kept from sign-in, else from the URL given,
        or /.well-known/caldav when that is just a host (RFC 6764 section 6), then
        current-user-principal, then calendar-home-set (on whatever host it names)."""
        if self._home is None:
            self._home = self._discover()
            self.discovered = True
        return self._home

    @property
    def known_home(self) -> Home | None:
        """The home as known without a request (kept in the login, or discovered already)."""
        return self._home

    def _discover(self) -> Home:
        well_known = urljoin(self.url, "/.well-known/caldav")
        bare = urlsplit(self.url).path in ("", "/")
        candidates = [well_known, self.url] if bare else [self.url, well_known]
        principal: str | None = None
        for candidate in candidates:
            reply = self.propfind(candidate, PRINCIPAL_BODY, 0)
            href = _first_href(reply, DAV + "current-user-principal")
            if href is not None:
                principal = absolute(candidate, href)
                break
        if principal is None:
            principal = self.url  # a server without current-user-principal: the URL is it
        reply = self.propfind(principal, HOME_BODY, 0)
        if reply.status >= 400:
            raise ProviderError(ErrorKind.INVALID, f"no CalDAV principal at {principal}")
        home = _first_href(reply, CAL + "calendar-home-set")
        if home is None:
            raise ProviderError(ErrorKind.INVALID, f"{principal} names no calendar home")
        addresses = {
            a.removeprefix("mailto:").removeprefix("MAILTO:").lower()
            for a in _hrefs(reply, CAL + "calendar-user-address-set")
            if a.lower().startswith("mailto:")
        }
        if "@" in self.username:
            addresses.add(self.username.lower())
        return Home(principal, absolute(principal, home), frozenset(addresses))

    def calendars(self) -> list[ProviderCalendar]:
        try:
            return self._calendars_at(self.home().calendar_home)
        except ProviderError as exc:
            if self.discovered or exc.kind in (ErrorKind.AUTH, ErrorKind.TRANSIENT):
                raise
        # The home kept from sign-in no longer answers (an iCloud account moved to another
        # partition): find it again, once.
        self._home = None
        return self._calendars_at(self.home().calendar_home)

    def _calendars_at(self, home: str) -> list[ProviderCalendar]:
        reply = self.propfind(home, CALENDARS_BODY, 1)
        if reply.status >= 400 or reply.dav is None:
            raise ProviderError(ErrorKind.INVALID, f"listing calendars answered {reply.status}")
        responses = _responses(reply.dav)
        if any(same_path(absolute(home, h), home) and not p for h, p in responses):
            # The home itself answered 404 inside the multistatus (Xandikos): it is not there.
            raise ProviderError(ErrorKind.INVALID, f"no calendar home at {home}")
        found: list[ProviderCalendar] = []
        for href, props in responses:
            kinds = props.get(DAV + "resourcetype")
            if kinds is None or kinds.find(CAL + "calendar") is None:
                continue
            components = props.get(CAL + "supported-calendar-component-set")
            if (
                components is not None
                and len(components)
                and not any(c.get("name", "").upper() == "VEVENT" for c in components)
            ):
                continue  # a task list or a journal, not a calendar of events
            url = absolute(home, href)
            name = _text(props.get(DAV + "displayname")) or unquote(
                urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
            )
            found.append(
                ProviderCalendar(
                    id=url if url.endswith("/") else url + "/",
                    name=name,
                    time_zone=_zone_of(_text(props.get(CAL + "calendar-timezone"))),
                    color=_colour(_text(props.get(APPLE + "calendar-color"))),
                    writable=_writable(props.get(DAV + "current-user-privilege-set")),
                )
            )
        return found

    def state(self, calendar_url: str) -> tuple[str | None, str | None]:
        """(sync-token, ctag) of a calendar in one PROPFIND; None for what the server lacks."""
        return self._collection_props(calendar_url, STATE_BODY)

    def ctag(self, calendar_url: str) -> str | None:
        """The calendar's ctag: one small PROPFIND, the whole cost of a quiet poll."""
        return self._collection_props(calendar_url, CTAG_BODY)[1]

    def _collection_props(self, calendar_url: str, body: str) -> tuple[str | None, str | None]:
        reply = self.propfind(calendar_url, body, 0)
        if reply.status in (404, 410):
            raise ProviderError(ErrorKind.GONE, f"no calendar at {calendar_url}")
        if reply.status >= 400 or reply.dav is None:
            return None, None
        for _, props in _responses(reply.dav):  # Depth 0: the calendar's one answer
            return _text(props.get(DAV + "sync-token")), _text(props.get(CS + "getctag"))
        return None, None


def _cursor_refused(reply: Reply) -> bool:
    """Xandikos says an unknown token with 412 (valid-sync-token) or, in older versions, 500."""
    if reply.status == 412:
        return True
    return reply.status == 500 and b"token" in reply.body.lower()


def _sync_unsupported(status: int, body: bytes) -> bool:
    if status in SYNC_UNSUPPORTED_STATUSES:
        return True
    return status == 400 and b"supported-report" in body


def _responses(dav: DAVResponse) -> list[tuple[str, dict[str, Any]]]:
    """(href, {property tag: element}) for every response, the properties found (200) only."""
    out: list[tuple[str, dict[str, Any]]] = []
    tree = dav.tree
    if tree is None:
        return out
    for response in tree.iter(DAV + "response"):
        href = response.findtext(DAV + "href") or ""
        props: dict[str, Any] = {}
        for propstat in response.findall(DAV + "propstat"):
            status = propstat.findtext(DAV + "status") or ""
            if " 200 " not in f"{status} ":
                continue
            prop = propstat.find(DAV + "prop")
            if prop is not None:
                for child in prop:
                    props[str(child.tag)] = child
        out.append((unquote(href), props))
    return out


def _hrefs(reply: Reply, tag: str) -> list[str]:
    if reply.dav is None:
        return []
    for _, props in _responses(reply.dav):
        element = props.get(tag)
        if element is not None:
            return [h.text.strip() for h in element.iter(DAV + "href") if h.text]
    return []


def _first_href(reply: Reply, tag: str) -> str | None:
    if reply.status >= 400:
        return None
    hrefs = _hrefs(reply, tag)
    return hrefs[0] if hrefs else None


def _text(element: Any) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext()) if hasattr(element, "itertext") else ""
    return text.strip() or None


def _colour(value: str | None) -> str | None:
    """Apple's calendar-color is #RRGGBB or #RRGGBBAA: calsync keeps #RRGGBB."""
    if value and re.fullmatch(r"#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?", value):
        return value[:7].upper()
    return None


def _zone_of(vtimezone: str | None) -> str | None:
    if not vtimezone:
        return None
    match = re.search(r"^TZID[^:]*:(.+)$", vtimezone, re.MULTILINE)
    return match.group(1).strip() if match else None


def _writable(privileges: Any) -> bool:
    if privileges is None:
        return True  # a server that does not say: try, and a 403 will tell
    names = {str(p.tag).split("}")[-1] for privilege in privileges for p in privilege}
    return bool(names & WRITE_PRIVILEGES)
