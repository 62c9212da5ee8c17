"""Group commit for push notifications: what `POST /webhooks/google` does with a notification.

The webhook hands each checked notification to the runtime's `WebhookBatcher` and waits. One
thread of its own takes every notification waiting (up to MAX_BATCH) and records them in one
transaction of Core statements: one read of their channels, one compare-and-set of each
channel's last message number, one enqueue per calendar, one insert of all the rows. Only then
is each request answered: an acknowledged notification is a recorded one. A batch that fails
is retried one notification at a time, so one bad notification cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import SQLModel

from calsync_server.db.models import Notification, PushChannel
from calsync_server.jobs.queue import JobQueue
from shared.clock import Clock
from shared.domain import ChannelState, NotificationOutcome, SyncKind

log = logging.getLogger("calsync.webhooks")
T = TypeVar("T")

# A notification joining a waiting sync delays it until the notifications pause this long: a
# burst becomes one sync after it. The first notification is never delayed.
DEBOUNCE_SECONDS = 0.3
# Notifications recorded in one transaction at most.
MAX_BATCH = 256
# Channels whose notifications could not be recorded, remembered until the database is back
# (then their calendars are synced); beyond this many, the oldest are forgotten (the safety
# poll still covers them).
MAX_LOST = 10_000


@dataclass(frozen=True, slots=True)
class PushHeaders:
    channel_id: str
    message_number: int
    resource_id: str
    resource_state: str
    resource_uri: str
    token: str


@dataclass(frozen=True, slots=True)
class Handled:
    outcome: NotificationOutcome
    # A channel to stop at the provider after answering (unknown or stopped).
    stop: bool = False


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a batch did: an outcome per notification, and whether it queued a new job."""

    handled: list[Handled]
    queued: bool


def record_notifications(
    connection: sa.Connection,
    jobs: JobQueue,
    pushes: Sequence[PushHeaders],
    now: datetime,
) -> Recorded:
    """Decide and record `pushes`, in order, inside the caller's transaction (which commits).

    The same rules as one at a time: an unknown or stopped channel -> UNKNOWN_CHANNEL; a token
    or resource that does not match -> FORGED; a message number not above the last one the
    channel accepted (in the database or earlier in `pushes`) -> DUPLICATE; a fresh "sync"
    message -> SYNC_MESSAGE; else the calendar's sync is queued (ENQUEUED) or joined
    (COALESCED, debounced).
    """
    wanted = list({push.channel_id for push in pushes})
    channels = {row.channel_id: row for row in connection.execute(_CHANNELS, {"ids": wanted})}
    outcomes: list[NotificationOutcome | None] = [None] * len(pushes)
    calendars: list[int | None] = [None] * len(pushes)
    seen: dict[int, int | None] = {}  # a channel's last message number as read
    highest: dict[int, int] = {}  # ... and once this batch's fresh ones are counted
    fresh: dict[int, list[int]] = {}  # a channel's fresh notifications (indexes), in order
    for index, push in enumerate(pushes):
        channel = channels.get(push.channel_id)
        if channel is None or channel.state == ChannelState.STOPPED:
            outcomes[index] = NotificationOutcome.UNKNOWN_CHANNEL
            calendars[index] = channel.calendar_id if channel is not None else None
            continue
        calendars[index] = channel.calendar_id
        # Compared in constant time: the token is the only proof the sender is the provider.
        if not hmac.compare_digest(push.token.encode(), channel.token.encode()) or (
            channel.resource_id is not None and channel.resource_id != push.resource_id
        ):
            outcomes[index] = NotificationOutcome.FORGED
            continue
        seen.setdefault(channel.id, channel.last_message_number)
        last = highest.get(channel.id, channel.last_message_number)
        if last is not None and push.message_number <= last:
            outcomes[index] = NotificationOutcome.DUPLICATE
            continue
        highest[channel.id] = push.message_number
        fresh.setdefault(channel.id, []).append(index)

    to_queue: list[int] = []
    for channel_pk in sorted(fresh):  # one lock order for every transaction
        indexes = fresh[channel_pk]
        numbers = [pushes[index].message_number for index in indexes]
        accepted = advance_message_number(connection, channel_pk, seen[channel_pk], numbers, now)
        for index, ok in zip(indexes, accepted, strict=True):
            if not ok:
                outcomes[index] = NotificationOutcome.DUPLICATE
            elif pushes[index].resource_state == "sync":
                outcomes[index] = NotificationOutcome.SYNC_MESSAGE
            else:
                to_queue.append(index)

    to_queue.sort()  # the order they came in: the first one for a calendar may queue its job
    queued = False
    if to_queue:
        enqueued = jobs.enqueue_in(
            connection,
            [_known(calendars[index]) for index in to_queue],
            SyncKind.WEBHOOK,
            debounce_seconds=DEBOUNCE_SECONDS,
            now=now,
        )
        for index, answer in zip(to_queue, enqueued, strict=True):
            queued = queued or not answer.coalesced
            outcomes[index] = (
                NotificationOutcome.COALESCED if answer.coalesced else NotificationOutcome.ENQUEUED
            )

    decided = [_known(outcome) for outcome in outcomes]
    connection.execute(
        _RECORD,
        [
            {
                "channel_id": push.channel_id,
                "calendar_id": calendars[index],
                "message_number": push.message_number,
                "resource_state": push.resource_state,
                "outcome": decided[index].value,
                "received_at": now,
            }
            for index, push in enumerate(pushes)
        ],
    )
    return Recorded(
        [Handled(o, stop=o is NotificationOutcome.UNKNOWN_CHANNEL) for o in decided], queued
    )


def advance_message_number(
    connection: sa.Connection,
    channel_pk: int,
    seen: int | None,
    numbers: Sequence[int],
    now: datetime,
) -> list[bool]:
    """Move a channel's last message number past `numbers` (increasing, all above `seen`, the
    number read); which of them were fresh. Atomic: of two deliveries of one message number,
    in any processes, at most one counts as fresh (none if a newer number came first).

    One compare-and-set when nobody moved the number since it was read; when somebody did, one
    conditional update per number, in order, each fresh only if it is still above the number.
    """
    assert numbers
    moved = connection.execute(
        _SET_IF_NONE if seen is None else _SET_IF_SEEN,
        {"b_pk": channel_pk, "b_seen": seen, "b_number": numbers[-1], "b_now": now},
    )
    if moved.rowcount == 1:
        return [True] * len(numbers)
    return [
        connection.execute(
            _SET_IF_ABOVE, {"b_pk": channel_pk, "b_number": number, "b_now": now}
        ).rowcount
        == 1
        for number in numbers
    ]


# The statements, built once: building them is most of the Python work of a small batch.
_channel = SQLModel.metadata.tables[PushChannel.__tablename__]
_CHANNELS = sa.select(
    _channel.c.id,
    _channel.c.channel_id,
    _channel.c.calendar_id,
    _channel.c.state,
    _channel.c.token,
    _channel.c.resource_id,
    _channel.c.last_message_number,
).where(_channel.c.channel_id.in_(sa.bindparam("ids", expanding=True)))


def _set_number(condition: sa.ColumnElement[bool]) -> sa.Update:
    return (
        sa.update(_channel)
        .where(_channel.c.id == sa.bindparam("b_pk"), condition)
        .values(
            last_message_number=sa.bindparam("b_number"),
            last_notification_at=sa.bindparam("b_now"),
            failures=0,
        )
    )


_last = _channel.c.last_message_number
_SET_IF_NONE = _set_number(_last.is_(None))
_SET_IF_SEEN = _set_number(_last == sa.bindparam("b_seen"))
_SET_IF_ABOVE = _set_number(sa.or_(_last.is_(None), _last < sa.bindparam("b_number")))
_RECORD = sa.insert(SQLModel.metadata.tables[Notification.__tablename__])


def _known(value: T | None) -> T:
    assert value is not None
    return value


@dataclass(slots=True)
class _Waiting:
    push: PushHeaders
    future: asyncio.Future[Handled]
    loop: asyncio.AbstractEventLoop


class WebhookBatcher:
    """One thread that records the notifications handed to it in batches (see the module)."""

    def __init__(
        self,
        db: sa.Engine,
        clock: Clock,
        jobs: JobQueue,
        wake: Callable[[], None],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.db = db
        self.clock = clock
        self.jobs = jobs
        self.wake = wake
        self.max_batch = max_batch
        self._inbox: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        # Channel ids of notifications that failed to be recorded (dict: insertion order).
        self._lost: dict[str, None] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def submit(self, push: PushHeaders) -> Handled:
        """Record `push` (with whatever else is waiting) and return what became of it."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(push, loop.create_future(), loop)
        with self._lock:
            closed = self._closed
            if not closed:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="calsync-webhooks", daemon=True
                    )
                    self._thread.start()
                self._inbox.put(waiting)
        if closed:  # shutting down: a late notification is still recorded before its answer
            return (await asyncio.to_thread(self.record, [push]))[0]
        return await waiting.future

    def remember_lost(self, channel_ids: Sequence[str]) -> None:
        """These channels' notifications were not recorded (the answer told the provider to
        retry, but its retries may run out): their calendars get a sync once recording works."""
        with self._lock:
            for channel_id in channel_ids:
                self._lost[channel_id] = None
            while len(self._lost) > MAX_LOST:
                del self._lost[next(iter(self._lost))]

    @property
    def lost(self) -> int:
        with self._lock:
            return len(self._lost)

    def recover_lost(self) -> list[int]:
        """Blocking: queue a sync of every calendar whose notification could not be recorded,
        and forget them; the calendar ids. Raises (remembering them still) while the database
        is away."""
        with self._lock:
            lost = list(self._lost)
        if not lost:
            return []
        with self.db.begin() as connection:
            calendars = sorted(
                {
                    row.calendar_id
                    for row in connection.execute(_CHANNELS, {"ids": lost})
                    if row.state != ChannelState.STOPPED
                }
            )
            if calendars:
                self.jobs.enqueue_in(connection, calendars, SyncKind.WEBHOOK, now=self.clock.now())
        with self._lock:
            for channel_id in lost:
                self._lost.pop(channel_id, None)
        if calendars:
            log.info("syncing %d calendar(s) whose notifications were not recorded", len(calendars))
            self.wake()
        return calendars

    def close(self) -> None:
        """Blocking: record what was handed in so far, then end the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._inbox.put(None)
        if thread is not None:
            thread.join()

    def record(self, pushes: Sequence[PushHeaders]) -> list[Handled]:
        """Blocking (any thread): record `pushes` in one transaction on a connection of the
        pool, and wake the workers if that queued a job."""
        with self.db.connect() as connection:
            return self._record_on(connection, pushes)

    def _record_on(self, connection: sa.Connection, pushes: Sequence[PushHeaders]) -> list[Handled]:
        with connection.begin():
            recorded = record_notifications(connection, self.jobs, pushes, self.clock.now())
        if recorded.queued:
            # A job joined was debounced (not due yet), so only a new job is worth a wake-up.
            self.wake()
        return recorded.handled

    def _run(self) -> None:
        # The thread keeps one connection (no checkout, reset or ping per batch); after a
        # failure it takes a fresh one.
        connection: sa.Connection | None = None
        try:
            closing = False
            while not closing:
                first = self._inbox.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        closing = True
                        break
                    batch.append(item)
                connection = self._handle(batch, connection)
        finally:
            if connection is not None:
                _close(connection)

    def _handle(
        self, batch: list[_Waiting], connection: sa.Connection | None
    ) -> sa.Connection | None:
        """Record `batch` and answer its requests whatever happens; the connection to go on with."""
        results: list[Handled | BaseException]
        try:
            if connection is None:
                connection = self.db.connect()
            results = list(self._record_on(connection, [w.push for w in batch]))
        except Exception as exc:
            if connection is not None:
                _close(connection)
                connection = None
            # One at a time, each on a connection of the pool (checked before use): the kept
            # connection may just have died with a database restart, and a lone notification
            # deserves that second try as much as a batch of them.
            log.warning("recording %d notification(s) failed (%s); one at a time", len(batch), exc)
            results = [self._alone(w.push) for w in batch]
        failed = [w.push.channel_id for w, r in zip(batch, results, strict=True) if _failed(r)]
        if failed:
            self.remember_lost(failed)
        for loop in {w.loop for w in batch}:
            mine = [(w.future, r) for w, r in zip(batch, results, strict=True) if w.loop is loop]
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, mine)
        return connection

    def _alone(self, push: PushHeaders) -> Handled | BaseException:
        try:
            return self.record([push])[0]
        except Exception as exc:
            log.exception("recording a notification on channel %s failed", push.channel_id)
            return exc


def _failed(result: Handled | BaseException) -> bool:
    return isinstance(result, BaseException)


def _close(connection: sa.Connection) -> None:
    try:
        connection.close()
    except Exception:  # a broken connection: the pool has discarded it
        log.exception("closing the webhook connection failed")


def _settle(results: list[tuple[asyncio.Future[Handled], Handled | BaseException]]) -> None:
    for future, result in results:
        if future.done():  # the request went away (cancelled)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
