"""Reading a calendar: calendarView delta rounds (pages, repeats, removals, series masters)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import msgspec

from calsync_server.providers.microsoft.client import GraphClient
from calsync_server.providers.microsoft.mapping import parse_stamp, to_remote_event
from calsync_server.providers.microsoft.wire import EventPage, GraphEvent
from calsync_server.providers.model import ChangeSet, ErrorKind, ProviderError, RemoteEvent

# Graph's largest page; fewer round trips for a first read.
PAGE_SIZE = 100
# A round that never reaches its deltaLink is a provider fault, not a reason to loop forever.
MAX_PAGES = 10_000


def window_params(window: tuple[datetime, datetime]) -> dict[str, str]:
    begin, finish = window
    return {
        "startDateTime": begin.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": finish.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _page(client: GraphClient, url: str, params: dict[str, str] | None, size: int) -> EventPage:
    answer = client.call(
        "GET",
        url,
        params=params,
        headers={"prefer": f"odata.maxpagesize={size}"},
        reading_delta=True,
    )
    try:
        return msgspec.convert(answer.body, EventPage)
    except msgspec.ValidationError as exc:
        raise ProviderError(ErrorKind.INVALID, f"an unreadable delta page: {exc}") from exc


def _newer(candidate: GraphEvent, held: GraphEvent | None) -> bool:
    """Whether a repeated item replaces the one held: the later lastModifiedDateTime wins, and
    at a tie the later in the round."""
    if held is None:
        return True
    new, old = parse_stamp(candidate.lastModifiedDateTime), parse_stamp(held.lastModifiedDateTime)
    return new is None or old is None or new >= old


def read_changes(
    client: GraphClient,
    calendar_id: str,
    *,
    cursor: str | None,
    window: tuple[datetime, datetime],
    page_size: int = PAGE_SIZE,
) -> ChangeSet:
    """One delta round: from ``cursor`` (the last deltaLink, whole) or, without one, every
    instance of the window. Items carry no extended properties here (Graph allows no
    `$expand` on delta): calsync tells its own blocks in a feed by the ids it stored.

    Raises ProviderError(CURSOR_EXPIRED) on 410 or syncStateNotFound/InvalidDeltaToken.
    """
    calendar = quote(calendar_id, safe="")
    url = cursor or f"/me/calendars/{calendar}/calendarView/delta"
    params = None if cursor else window_params(window)
    # The round in arrival order: the newest of each id, or its removal.
    latest: dict[str, GraphEvent] = {}
    removed: dict[str, None] = {}
    masters: dict[str, None] = {}
    for _ in range(MAX_PAGES):
        page = _page(client, url, params, page_size)
        for item in page.value:
            if item.removed is not None:
                latest.pop(item.id, None)
                masters.pop(item.id, None)
                removed[item.id] = None
            elif item.type == "seriesMaster":
                removed.pop(item.id, None)
                masters[item.id] = None
            elif _newer(item, latest.get(item.id)):
                removed.pop(item.id, None)
                latest[item.id] = item
        if page.delta_link is not None:
            delta_link = page.delta_link
            break
        if page.next_link is None:
            raise ProviderError(
                ErrorKind.INVALID, "a delta page with neither nextLink nor deltaLink"
            )
        url, params = page.next_link, None
    else:
        raise ProviderError(ErrorKind.INVALID, f"a delta round longer than {MAX_PAGES} pages")
    events: dict[str, RemoteEvent] = {}
    for item in latest.values():
        if item.start is not None and item.end is not None:
            events[item.id] = to_remote_event(item)
    for master_id in masters:
        # A master stands for its whole series: its instances in the window replace the
        # series' instances calsync holds.
        try:
            found = instances(client, calendar_id, master_id, window, page_size)
        except ProviderError as exc:
            if exc.kind is not ErrorKind.GONE:
                raise
            found = []  # the series went meanwhile: none of its instances is left
        for instance in found:
            events[instance.id] = instance
    return ChangeSet(
        events=tuple(events.values()),
        removed=tuple(i for i in removed if i not in events),
        series_replaced=tuple(masters),
        cursor=delta_link,
        full=cursor is None,
    )


def instances(
    client: GraphClient,
    calendar_id: str,
    master_id: str,
    window: tuple[datetime, datetime],
    page_size: int = PAGE_SIZE,
) -> list[RemoteEvent]:
    """The occurrences and exceptions of a series that fall in the window."""
    url = (
        f"/me/calendars/{quote(calendar_id, safe='')}/events/{quote(master_id, safe='')}/instances"
    )
    params: dict[str, str] | None = {**window_params(window), "$top": str(page_size)}
    found: list[RemoteEvent] = []
    for _ in range(MAX_PAGES):
        answer = client.call("GET", url, params=params)
        page = msgspec.convert(answer.body, EventPage)
        found.extend(
            to_remote_event(item)
            for item in page.value
            if item.removed is None and item.start is not None and item.end is not None
        )
        if page.next_link is None:
            return found
        url, params = page.next_link, None
    raise ProviderError(ErrorKind.INVALID, f"a series longer than {MAX_PAGES} pages")
