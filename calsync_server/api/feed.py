"""The free/busy feed over HTTP: the feed itself at its secret URL (no token: whoever holds the
URL may read it, as calendar subscriptions do), and the user's API to make, rotate or remove it."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter
from sqlmodel import Session

from calsync_server.api.auth import provide_user_id
from calsync_server.api.openapi import AUTHENTICATED, errors
from calsync_server.feed.busy import FeedDocument, busy_spans, render
from calsync_server.feed.keys import feed_of, remove_feed, rotate_feed, user_of_feed
from calsync_server.runtime import Runtime
from shared.schemas import FeedOut

UserId = NamedDependency[int]
CALENDAR_TYPE = "text/calendar; charset=utf-8"
# A subscriber may keep it this long; the URL is a secret, so no shared cache may keep it.
CACHE_CONTROL = "private, max-age=300"


def _document(runtime: Runtime, key: str, secret: str) -> FeedDocument | None:
    with Session(runtime.db) as session:
        user_id = user_of_feed(session, key, secret)
        if user_id is None:
            return None
        spans, window = busy_spans(
            session, user_id, runtime.clock.now(), runtime.settings.horizon_days
        )
    return render(spans, window, salt=key)


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match: a list of tags (weak ones compared weakly, as RFC 9110 says), or *."""
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


@get("/feeds/{key:str}/{name:str}", tags=["feed"], include_in_schema=False)
async def busy_feed(
    request: Request[Any, Any, Any],
    key: Annotated[str, PathParameter(max_length=64)],
    name: Annotated[str, PathParameter(max_length=128)],
) -> Response[bytes]:
    """The user's busy times as iCalendar: 404 for a wrong, old or unknown URL; 304 when the
    subscriber's copy (If-None-Match) is current."""
    runtime: Runtime = request.app.state.runtime
    secret = name.removesuffix(".ics")
    found = None
    if name.endswith(".ics"):
        found = await asyncio.to_thread(_document, runtime, key, secret)
    if found is None:
        raise NotFoundException("no such feed")
    headers = {"ETag": found.etag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match"), found.etag):
        return Response(b"", status_code=304, headers=headers)
    return Response(found.body, headers={**headers, "Content-Type": CALENDAR_TYPE})


def _base(request: Request[Any, Any, Any], runtime: Runtime) -> str:
    """Where subscribers reach this server: the public URL when set, else what was asked."""
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


class BusyFeedApi(Controller):
    path = "/api/v1/feed"
    dependencies = {"user_id": Provide(provide_user_id)}
    tags = ["api"]
    security = [{"BearerToken": []}]

    @get("/", sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def feed(self, request: Request[Any, Any, Any], user_id: UserId) -> FeedOut:
        """Whether the user has a free/busy feed, and since when (its URL is shown only when
        made: calsync keeps only a hash of its secret)."""
        runtime: Runtime = request.app.state.runtime
        with Session(runtime.db) as session:
            found = feed_of(session, user_id)
            if found is None:
                return FeedOut(enabled=False)
            return FeedOut(enabled=True, created_at=found.created_at)

    @post("/rotate", status_code=201, sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def rotate(self, request: Request[Any, Any, Any], user_id: UserId) -> FeedOut:
        """A new secret URL for the user's free/busy feed (the first one, or a replacement:
        the old URL answers 404 from now on). Shown only in this answer."""
        runtime: Runtime = request.app.state.runtime
        with Session(runtime.db) as session:
            address = rotate_feed(session, user_id, runtime.clock.now())
            session.commit()
            found = feed_of(session, user_id)
            assert found is not None
            url = _base(request, runtime) + address.path
            return FeedOut(enabled=True, created_at=found.created_at, url=url)

    @delete("/", status_code=200, sync_to_thread=True, responses=errors(*AUTHENTICATED))
    def remove(self, request: Request[Any, Any, Any], user_id: UserId) -> FeedOut:
        """Turn the feed off: its URL answers 404 from now on."""
        runtime: Runtime = request.app.state.runtime
        with Session(runtime.db) as session:
            remove_feed(session, user_id)
            session.commit()
        return FeedOut(enabled=False)
