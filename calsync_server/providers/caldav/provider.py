"""The CalDAV provider: calsync's Provider over any RFC 4791 server (iCloud, Fastmail, Nextcloud,
Radicale, Xandikos...).

Reads: a first read is a time-range calendar-query over the window, with the collection's
sync-token as the cursor; later reads are one sync-collection REPORT asking for calendar-data
in the same answer. A server without sync-collection (no sync-token, or the REPORT refused)
is polled by its ctag instead: one PROPFIND when nothing changed, else the window's query
compared by ETag with the snapshot in the cursor (cursor.py).

Every changed resource replaces its instances whole (``series_replaced``);
a resource gone (404 in the report) removes them. Blocks live at ``<calendar>/<digest>.ics``
with UID ``<digest>@calsync``; the ETag is the version, so an echo of calsync's own write is
recognised without another request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import msgspec

from calsync_server.providers.caldav import cursor as cursors
from calsync_server.providers.caldav import mapping
from calsync_server.providers.caldav.client import (
    XML_HEADERS,
    CalDAVClient,
    Home,
    Reply,
    SyncUnsupported,
    same_path,
)
from calsync_server.providers.credentials import CalDAVPassword, StoredCredentials
from calsync_server.providers.model import (
    BlockAction,
    BlockIds,
    BlockOp,
    BlockResult,
    CallStats,
    Capabilities,
    ChangeSet,
    ErrorKind,
    ProviderCalendar,
    ProviderError,
    PushKind,
    RemoteEvent,
)

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(block_ids=BlockIds.CLIENT, push=PushKind.NONE, batch_size=1)
ICS_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}
# A truncated sync-collection answer (RFC 6578 section 3.6) is followed this many times.
MAX_SYNC_PAGES = 20


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _query_body(window: tuple[datetime, datetime]) -> str:
    start, end = window
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{_stamp(start)}" end="{_stamp(end)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


def _sync_body(token: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:sync-token>{_xml_text(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/><C:calendar-data/></D:prop></D:sync-collection>"
    )


def _multiget_body(hrefs: Sequence[str]) -> str:
    listed = "".join(f"<D:href>{_xml_text(h)}</D:href>" for h in hrefs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{listed}</C:calendar-multiget>"
    )


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def resource_name(href: str) -> str:
    """A resource's id in its calendar: the last segment of its href."""
    return unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])


def _snapshot(ctag: str | None, listing: Sequence[tuple[str, str | None, str]]) -> cursors.Snapshot:
    return cursors.Snapshot(ctag, {resource_name(href): etag for href, etag, _ in listing})


class CalDAVProvider:
    """One CalDAV login (server URL, user name, password: an app-specific one for iCloud)."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        home: Home | None = None,
        timeout: float = 30.0,
        max_tries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stats = CallStats()
        self.clock = clock
        self.client = CalDAVClient(
            url,
            username,
            password,
            stats=self.stats,
            home=home,
            timeout=timeout,
            max_tries=max_tries,
            sleep=sleep,
            clock=clock,
        )
        self._zones: dict[str, str | None] = {}

    @classmethod
    def from_login(
        cls,
        login: CalDAVPassword,
        *,
        timeout: float = 30.0,
        max_tries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> CalDAVProvider:
        """The login's provider, starting from the calendar home kept in it (a login stored
        before calsync kept it discovers it again, and credentials_to_store keeps it then)."""
        home = None
        if login.calendar_home and login.principal:
            home = Home(login.principal, login.calendar_home, frozenset(login.addresses))
        return cls(
            login.url,
            login.username,
            login.password,
            home=home,
            timeout=timeout,
            max_tries=max_tries,
            sleep=sleep,
            clock=clock,
        )

    def credentials_to_store(self, previous: StoredCredentials) -> StoredCredentials | None:
        """The login with what discovery found, when it found something the login lacks: the
        next sync, or the sign-in's import, starts from there."""
        if not self.client.discovered or not isinstance(previous, CalDAVPassword):
            return None
        home = self.client.home()
        found = msgspec.structs.replace(
            previous,
            calendar_home=home.calendar_home,
            principal=home.principal,
            addresses=tuple(sorted(home.addresses)),
        )
        return None if found == previous else found

    def owner_addresses(self) -> frozenset[str]:
        """The principal's calendar-user-address-set (iCloud: the Apple ID and its aliases)
        and the user name where it is an address; discovery's, so asked at most once."""
        return self.client.home().addresses

    def known_owner_addresses(self) -> frozenset[str] | None:
        """The addresses the login kept or discovery found this time; None before either."""
        home = self.client.known_home
        return None if home is None else home.addresses

    # -- calendars -----------------------------------------------------------------------------

    def list_calendars(self) -> list[ProviderCalendar]:
        calendars = self.client.calendars()
        self._zones.update({c.id: c.time_zone for c in calendars})
        return calendars

    # -- reading -------------------------------------------------------------------------------

    def read_changes(
        self, calendar_id: str, *, cursor: str | None, window: tuple[datetime, datetime]
    ) -> ChangeSet:
        if cursor is None:
            return self._read_window(calendar_id, window)
        try:
            snapshot = cursors.decode(cursor)
        except cursors.BadCursor as exc:
            raise ProviderError(ErrorKind.CURSOR_EXPIRED, f"unreadable cursor: {exc}") from None
        if snapshot is not None:
            return self._read_by_ctag(calendar_id, cursor, snapshot, window)
        try:
            return self._read_since(calendar_id, cursor, window)
        except SyncUnsupported:
            # It gave a sync-token and then refused to sync from it: from now on the calendar
            # is polled by its ctag (the cursor says so), starting with this full read.
            self.stats.note("the server refuses sync-collection: polled by its ctag")
            return self._read_by_ctag(calendar_id, None, None, window)

    def _read_window(self, calendar_id: str, window: tuple[datetime, datetime]) -> ChangeSet:
        # The token first: a change made while the query runs is then read again next time
        # rather than skipped.
        token, ctag = self.client.state(calendar_id)
        listing = self._query(calendar_id, window)
        events: list[RemoteEvent] = []
        for href, etag, data in listing:
            events.extend(self._instances(calendar_id, href, etag, data, window))
        cursor = token or cursors.encode(_snapshot(ctag, listing))
        return ChangeSet(events=tuple(events), cursor=cursor, full=True)

    def _read_by_ctag(
        self,
        calendar_id: str,
        cursor: str | None,
        previous: cursors.Snapshot | None,
        window: tuple[datetime, datetime],
    ) -> ChangeSet:
        """A calendar without sync-collection: its ctag first (all a quiet poll costs), and
        when that moved, the window's resources compared by ETag with the last snapshot."""
        ctag = self.client.ctag(calendar_id)
        if previous is not None and ctag is not None and ctag == previous.ctag:
            return ChangeSet(cursor=cursor, full=False)
        listing = self._query(calendar_id, window)
        fresh = cursors.encode(_snapshot(ctag, listing))
        if previous is None:
            events = [
                event
                for href, etag, data in listing
                for event in self._instances(calendar_id, href, etag, data, window)
            ]
            return ChangeSet(events=tuple(events), cursor=fresh, full=True)
        changed: list[str] = []
        events = []
        for href, etag, data in listing:
            name = resource_name(href)
            # No ETag from the server: read it again, there is no telling it is the same.
            if etag is None or name not in previous.etags or previous.etags[name] != etag:
                changed.append(name)
                events.extend(self._instances(calendar_id, href, etag, data, window))
        held = {resource_name(href) for href, _, _ in listing}
        gone = [name for name in previous.etags if name not in held]
        return ChangeSet(
            events=tuple(events),
            removed=tuple(gone),
            series_replaced=tuple(changed + gone),
            cursor=fresh,
            full=False,
        )

    def _query(
        self, calendar_id: str, window: tuple[datetime, datetime]
    ) -> list[tuple[str, str | None, str]]:
        reply = self.client.report(calendar_id, _query_body(window), 1)
        self._check(reply, "calendar-query")
        out: list[tuple[str, str | None, str]] = []
        if reply.dav is None:
            return out
        for result in reply.dav.parse_calendar_query():
            if same_path(result.href, calendar_id) or result.status == 404:
                continue
            if result.calendar_data:
                out.append((result.href, result.etag, result.calendar_data))
        return out

    def _read_since(
        self, calendar_id: str, cursor: str, window: tuple[datetime, datetime]
    ) -> ChangeSet:
        token = cursor
        changed: dict[str, tuple[str | None, str | None]] = {}
        removed: list[str] = []
        for _ in range(MAX_SYNC_PAGES):
            reply = self.client.report(calendar_id, _sync_body(token), 0, sync=True)
            self._check(reply, "sync-collection")
            if reply.dav is None:
                break
            result = reply.dav.parse_sync_collection()
            for item in result.changed:
                # iCloud lists the collection itself among the members: it is no event.
                if same_path(item.href, calendar_id):
                    continue
                changed[item.href] = (item.etag, item.calendar_data)
            for href in result.deleted:
                if not same_path(href, calendar_id):
                    changed.pop(href, None)
                    removed.append(href)
            token = result.sync_token or token
            if not result.truncated:
                break
        missing = [href for href, (_, data) in changed.items() if not data]
        if missing:
            # A server that sends no calendar-data in the report: one multiget for the rest.
            for href, etag, text in self._multiget(calendar_id, missing):
                changed[href] = (etag, text)
        events: list[RemoteEvent] = []
        replaced: list[str] = []
        for href, (etag, data) in changed.items():
            replaced.append(resource_name(href))
            if data:
                events.extend(self._instances(calendar_id, href, etag, data, window))
        gone = [resource_name(h) for h in removed]
        return ChangeSet(
            events=tuple(events),
            removed=tuple(gone),
            series_replaced=tuple(replaced + gone),
            cursor=token,
            full=False,
        )

    def _multiget(self, calendar_id: str, hrefs: list[str]) -> list[tuple[str, str | None, str]]:
        reply = self.client.report(calendar_id, _multiget_body(hrefs), 1)
        self._check(reply, "calendar-multiget")
        if reply.dav is None:
            return []
        return [
            (r.href, r.etag, r.calendar_data)
            for r in reply.dav.parse_calendar_query()
            if r.calendar_data
        ]

    def _own_addresses(self, data: str | bytes) -> frozenset[str]:
        """The owner's addresses, which only an invitation needs (whose answer is the owner's):
        finding them costs discovery (three PROPFINDs), so a resource without attendees, most
        of them and every block, does without."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if "ATTENDEE" not in text.upper():
            return frozenset()
        return self.client.home().addresses

    def _instances(
        self,
        calendar_id: str,
        href: str,
        etag: str | None,
        data: str,
        window: tuple[datetime, datetime],
    ) -> list[RemoteEvent]:
        key = resource_name(href)
        try:
            cal = mapping.parse(data)
            return mapping.expand(
                cal,
                key=key,
                version=etag,
                window=window,
                own=self._own_addresses(data),
                calendar_zone=self._zones.get(calendar_id),
            )
        except mapping.BadResource as exc:
            # One unreadable resource must not stop the calendar's sync.
            log.warning("skipping unreadable CalDAV resource %s: %s", href, exc)
            self.stats.note(f"skipped an unreadable event ({key})")
            return []

    def list_blocks(
        self, calendar_id: str, *, window: tuple[datetime, datetime]
    ) -> list[RemoteEvent]:
        """calsync's blocks in the window: resources carrying X-CALSYNC-SOURCE, never by title."""
        blocks: list[RemoteEvent] = []
        for href, etag, data in self._query(calendar_id, window):
            for event in self._instances(calendar_id, href, etag, data, window):
                if event.block_source is not None:
                    blocks.append(event)
        return blocks

    # -- blocks --------------------------------------------------------------------------------

    def block_id(self, digest: str) -> str:
        return mapping.block_name(digest)

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        results: list[BlockResult] = []
        for op in ops:
            try:
                results.append(BlockResult(op, block=self._apply_one(op)))
            except ProviderError as exc:
                results.append(BlockResult(op, error=exc))
        return results

    def _apply_one(self, op: BlockOp) -> RemoteEvent | None:
        name = op.block_id or (self.block_id(op.digest) if op.digest else None)
        if name is None:
            raise ProviderError(ErrorKind.INVALID, "a CalDAV block needs its id or digest")
        url = self._href(op.calendar_id, name)
        if op.action is BlockAction.READ:
            return self._read_block(url, name)
        if op.action is BlockAction.DELETE:
            headers = {"If-Match": op.version} if op.version else {}
            reply = self.client.send("DELETE", url, "", headers)
            self._check_write(reply, "DELETE")
            return None
        if op.content is None:
            raise ProviderError(ErrorKind.INVALID, f"{op.action.value} needs the block's content")
        # The UID follows the resource, never the op: a merged block moved to another key (an
        # update whose digest is its new key's) keeps its resource, and a UID may not change.
        digest = name.removesuffix(".ics")
        text = mapping.block_text(digest, op.content, stamp=self.clock())
        if op.action is BlockAction.CREATE:
            headers = {**ICS_HEADERS, "If-None-Match": "*"}
        else:
            # Real ETags only: iCloud mishandles If-Match: *.
            headers = {**ICS_HEADERS, **({"If-Match": op.version} if op.version else {})}
        reply = self.client.send("PUT", url, text, headers)
        self._check_write(reply, "PUT", create=op.action is BlockAction.CREATE)
        etag = reply.etag or self._etag(url)
        return mapping.block_event(text, key=name, version=etag)

    def _read_block(self, url: str, name: str) -> RemoteEvent:
        reply = self.client.send("GET", url, "", {"Accept": "text/calendar"})
        if reply.status in (404, 410):
            raise ProviderError(ErrorKind.GONE, f"no block at {name}")
        self._check(reply, "GET")
        try:
            return mapping.block_event(
                reply.body, key=name, version=reply.etag, own=self._own_addresses(reply.body)
            )
        except mapping.BadResource as exc:
            raise ProviderError(ErrorKind.INVALID, f"{name}: {exc}") from exc

    def _etag(self, url: str) -> str | None:
        """A server may leave out the ETag when it changed what was PUT: ask for it."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
        )
        reply = self.client.send("PROPFIND", url, body, {**XML_HEADERS, "Depth": "0"})
        if reply.dav is None or reply.status >= 400:
            return None
        for result in reply.dav.parse_propfind():
            etag = result.properties.get("{DAV:}getetag")
            if isinstance(etag, str):
                return etag
        return None

    def _href(self, calendar_id: str, name: str) -> str:
        base = calendar_id if calendar_id.endswith("/") else calendar_id + "/"
        return base + quote(name, safe="@:+=,")

    def _check(self, reply: Reply, what: str) -> None:
        if reply.status in (404, 410):
            raise ProviderError(ErrorKind.GONE, f"{what}: the calendar is not there")
        if reply.status >= 400:
            raise ProviderError(ErrorKind.INVALID, f"{what} answered {reply.status}")

    def _check_write(self, reply: Reply, what: str, *, create: bool = False) -> None:
        if reply.status < 300:
            return
        if reply.status == 412:
            if create:
                raise ProviderError(ErrorKind.EXISTS, "a block is already at this href")
            raise ProviderError(ErrorKind.STALE, "the block changed since it was read")
        if reply.status in (404, 410):
            raise ProviderError(ErrorKind.GONE, f"{what}: the block is not there")
        if reply.status == 405:
            raise ProviderError(ErrorKind.FORBIDDEN, f"{what} refused ({reply.status})")
        if reply.status == 409:
            # A UID another resource of the account holds (iCloud refuses it across calendars).
            raise ProviderError(ErrorKind.INVALID, f"{what} refused: the UID is taken elsewhere")
        raise ProviderError(ErrorKind.INVALID, f"{what} answered {reply.status}")

    def close(self) -> None:
        self.client.close()
