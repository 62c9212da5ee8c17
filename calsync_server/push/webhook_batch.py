"""Group commit for push notifications: what the webhooks do with each parsed notice.

The webhook hands each request's notices (a provider's parser read them) to the runtime's
`WebhookBatcher` and waits. One thread of its own takes every notice waiting (up to MAX_BATCH,
a request's notices always together) and records them in one transaction of Core statements:
one read of their subscriptions, one compare-and-set of each subscription's last sequence
number, one enqueue per calendar, one insert of all the rows. Only then is each request
answered: an acknowledged notification is a recorded one. A batch that fails is retried one
request at a time, so one bad notification cannot fail the others' requests.
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
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import SQLModel

from calsync_server.db.models import Notification, PushSubscription
from calsync_server.db.prepared import Prepared
from calsync_server.jobs.queue import JobQueue
from calsync_server.providers.model import Notice, NoticeKind
from shared.clock import Clock
from shared.domain import ChannelState, NotificationOutcome, SyncKind

log = logging.getLogger("calsync.webhooks")
T = TypeVar("T")

# A notification joining a waiting sync delays it until the notifications pause this long: a
# burst becomes one sync after it. The first notification is never delayed.
DEBOUNCE_SECONDS = 0.3
# While a burst lasts (the last batch held several requests), the thread waits this long at
# most for the event loop's next hand-over before recording a smaller lot: a burst then costs
# fewer, bigger transactions, whose fixed cost (the statements, the commit) was most of a
# notification's when batches held a few requests (PostgreSQL's commit_delay, for the same
# reason). A lone notification (the last batch held one request) is recorded at once.
GATHER_SECONDS = 0.001
# Notifications recorded in one transaction at most.
MAX_BATCH = 256
# Subscriptions whose notices could not be recorded, remembered until the database is back
# (then their calendars are synced); beyond this many, the oldest are forgotten (the safety
# poll still covers them).
MAX_LOST = 10_000


@dataclass(frozen=True, slots=True)
class Incoming:
    """A notice and how it was addressed: by our key (`/webhooks/{provider}/{key}`) or, on
    the legacy `/webhooks/google` route, by the provider's own id (`key` None)."""

    provider: str
    notice: Notice
    key: str | None = None
    # Which request brought it (None: its own). Graph sends several notices per POST, and
    # several per user action (a create comes with an update): one request's notices about
    # one calendar are one announcement, which must not debounce its own sync.
    request: int | None = None

    @property
    def label(self) -> str:
        """What names it in the notification table (a subscription's key; Google: its channel
        id, which is the key) and among the notices not recorded."""
        return (self.key or self.notice.remote_id)[:64]


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
    pushes: Sequence[Incoming],
    now: datetime,
    likely_echo: Callable[[int], bool] | None = None,
) -> Recorded:
    """Decide and record `pushes`, in order, inside the caller's transaction (which commits).

    The same rules as one at a time: an unknown or stopped subscription -> UNKNOWN_CHANNEL; a
    secret, remote id or resource that does not match -> FORGED; a sequence number not above
    the last one the subscription accepted (in the database or earlier in `pushes`) ->
    DUPLICATE; a fresh "opened" notice -> SYNC_MESSAGE; "reauthorize" -> LIFECYCLE (the keeper
    renews it now); else the calendar's sync is queued (ENQUEUED) or joined (COALESCED,
    debounced), and a "removed" subscription is marked for the keeper to replace.

    A calendar `likely_echo` names (calsync wrote blocks to it lately) gets a new job that
    waits DEBOUNCE_SECONDS, as a joined one does: its sync most likely reads only calsync's
    own writes, and a person's change notified at the same moment goes to a worker first.
    """
    subscriptions = _subscriptions(connection, pushes)
    outcomes: list[NotificationOutcome | None] = [None] * len(pushes)
    calendars: list[int | None] = [None] * len(pushes)
    seen: dict[int, int | None] = {}  # a subscription's last sequence number as read
    highest: dict[int, int] = {}  # ... and once this batch's fresh ones are counted
    fresh: dict[int, list[int]] = {}  # a subscription's fresh numbered notices (indexes)
    unnumbered: dict[int, list[int]] = {}  # ... and those without a number (Graph's)
    for index, push in enumerate(pushes):
        notice = push.notice
        row = subscriptions[index]
        if row is None or row.state == ChannelState.STOPPED:
            outcomes[index] = NotificationOutcome.UNKNOWN_CHANNEL
            calendars[index] = row.calendar_id if row is not None else None
            continue
        calendars[index] = row.calendar_id
        # Compared in constant time: the secret is the only proof the sender is the provider.
        if (
            not hmac.compare_digest((notice.secret or "").encode(), row.secret.encode())
            or row.provider != push.provider
            or (row.remote_id is not None and notice.remote_id != row.remote_id)
            or (row.resource is not None and notice.resource and notice.resource != row.resource)
        ):
            outcomes[index] = NotificationOutcome.FORGED
            continue
        if notice.sequence is None:
            unnumbered.setdefault(row.id, []).append(index)
            continue
        seen.setdefault(row.id, row.last_sequence)
        last = highest.get(row.id, row.last_sequence)
        if last is not None and notice.sequence <= last:
            outcomes[index] = NotificationOutcome.DUPLICATE
            continue
        highest[row.id] = notice.sequence
        fresh.setdefault(row.id, []).append(index)

    accepted: list[int] = []
    for pk in sorted(fresh):  # one lock order for every transaction
        indexes = fresh[pk]
        numbers = [_known(pushes[index].notice.sequence) for index in indexes]
        advanced = advance_message_number(connection, pk, seen[pk], numbers, now)
        for index, ok in zip(indexes, advanced, strict=True):
            if ok:
                accepted.append(index)
            else:
                outcomes[index] = NotificationOutcome.DUPLICATE
    for pk in sorted(unnumbered):
        _TOUCH.execute(connection, {"b_pk": pk, "b_now": now})
        accepted += unnumbered[pk]

    to_queue: list[int] = []
    announced: set[tuple[int, int]] = set()  # (request, calendar) already passed on
    for index in accepted:
        kind = pushes[index].notice.kind
        pk = _known(subscriptions[index]).id
        if kind is NoticeKind.OPENED:
            outcomes[index] = NotificationOutcome.SYNC_MESSAGE
        elif kind is NoticeKind.REAUTHORIZE:
            connection.execute(_RENEW_NOW, {"b_pk": pk, "b_now": now})
            outcomes[index] = NotificationOutcome.LIFECYCLE
        else:
            if kind is NoticeKind.REMOVED:
                connection.execute(_REMOVED, {"b_pk": pk})
            request = pushes[index].request
            if request is not None and (request, _known(calendars[index])) in announced:
                outcomes[index] = NotificationOutcome.COALESCED
                continue
            if request is not None:
                announced.add((request, _known(calendars[index])))
            to_queue.append(index)

    to_queue.sort()  # the order they came in: the first one for a calendar may queue its job
    echoes = {c for c in {_known(calendars[i]) for i in to_queue} if likely_echo and likely_echo(c)}
    queued = False
    for delay in (0.0, DEBOUNCE_SECONDS):
        indexes = [i for i in to_queue if (_known(calendars[i]) in echoes) == bool(delay)]
        if not indexes:
            continue
        enqueued = jobs.enqueue_in(
            connection,
            [_known(calendars[index]) for index in indexes],
            SyncKind.WEBHOOK,
            delay_seconds=delay,
            debounce_seconds=DEBOUNCE_SECONDS,
            now=now,
        )
        for index, answer in zip(indexes, enqueued, strict=True):
            # A delayed job is not due yet: an idle worker's poll takes it, as a debounced one.
            queued = queued or (not answer.coalesced and not delay)
            outcomes[index] = (
                NotificationOutcome.COALESCED if answer.coalesced else NotificationOutcome.ENQUEUED
            )

    decided = [_known(outcome) for outcome in outcomes]
    # `_value_`, not `value`: the enum's property costs a row more than the rest of it.
    _RECORD.execute_many(
        connection,
        [
            {
                "channel_id": push.label,
                "calendar_id": calendars[index],
                "message_number": push.notice.sequence,
                "kind": push.notice.kind._value_,
                "outcome": decided[index]._value_,
            }
            for index, push in enumerate(pushes)
        ],
        shared={"received_at": now},
    )
    return Recorded(
        [Handled(o, stop=o is NotificationOutcome.UNKNOWN_CHANNEL) for o in decided], queued
    )


def _subscriptions(connection: sa.Connection, pushes: Sequence[Incoming]) -> list[Any]:
    """Each notice's subscription: by key, or (legacy route) by the provider's id, a live one
    before a stopped one."""
    keys = list({push.key for push in pushes if push.key is not None})
    remote = list({push.notice.remote_id for push in pushes if push.key is None})
    by_key = {row.key: row for row in _select(connection, _BY_KEY, keys)} if keys else {}
    by_remote: dict[tuple[str, str], Any] = {}
    if remote:
        for row in _select(connection, _BY_REMOTE, remote):
            mine = (row.provider, row.remote_id)
            if mine not in by_remote or by_remote[mine].state == ChannelState.STOPPED:
                by_remote[mine] = row
    return [
        by_key.get(push.key)
        if push.key is not None
        else by_remote.get((push.provider, push.notice.remote_id))
        for push in pushes
    ]


def _select(
    connection: sa.Connection, statements: tuple[Prepared, sa.Select[Any]], ids: list[str]
) -> Sequence[Any]:
    """The subscriptions with these ids: a batch's notices are mostly about one subscription,
    read by a prepared `= :id` (an IN list is expanded on every execution)."""
    one, several = statements
    if len(ids) == 1:
        return one.rows(connection, {"id": ids[0]})
    return connection.execute(several, {"ids": ids}).all()


def advance_message_number(
    connection: sa.Connection,
    channel_pk: int,
    seen: int | None,
    numbers: Sequence[int],
    now: datetime,
) -> list[bool]:
    """Move a subscription's last sequence number past `numbers` (increasing, all above
    `seen`, the number read); which of them were fresh. Atomic: of two deliveries of one
    number, in any processes, at most one counts as fresh (none if a newer number came first).

    One compare-and-set when nobody moved the number since it was read; when somebody did, one
    conditional update per number, in order, each fresh only if it is still above the number.
    """
    assert numbers
    if seen is None:
        moved = _SET_IF_NONE.execute(
            connection, {"b_pk": channel_pk, "b_number": numbers[-1], "b_now": now}
        )
    else:
        moved = _SET_IF_SEEN.execute(
            connection,
            {"b_pk": channel_pk, "b_seen": seen, "b_number": numbers[-1], "b_now": now},
        )
    if moved == 1:
        return [True] * len(numbers)
    return [
        _SET_IF_ABOVE.execute(connection, {"b_pk": channel_pk, "b_number": number, "b_now": now})
        == 1
        for number in numbers
    ]


# The statements, built once: building them is most of the Python work of a small batch. Those
# every batch runs are Prepared: SQLAlchemy's work per execution cost several times SQLite's.
_table = SQLModel.metadata.tables[PushSubscription.__tablename__]
_COLUMNS = (
    _table.c.id,
    _table.c.key,
    _table.c.provider,
    _table.c.remote_id,
    _table.c.calendar_id,
    _table.c.state,
    _table.c.secret,
    _table.c.resource,
    _table.c.last_sequence,
)
_BY_KEY = (
    Prepared(sa.select(*_COLUMNS).where(_table.c.key == sa.bindparam("id"))),
    sa.select(*_COLUMNS).where(_table.c.key.in_(sa.bindparam("ids", expanding=True))),
)
_BY_REMOTE = (
    Prepared(sa.select(*_COLUMNS).where(_table.c.remote_id == sa.bindparam("id"))),
    sa.select(*_COLUMNS).where(_table.c.remote_id.in_(sa.bindparam("ids", expanding=True))),
)
_LOST = sa.select(_table.c.calendar_id, _table.c.state).where(
    sa.or_(
        _table.c.key.in_(sa.bindparam("ids", expanding=True)),
        _table.c.remote_id.in_(sa.bindparam("remote", expanding=True)),
    )
)


def _set_number(condition: sa.ColumnElement[bool]) -> Prepared:
    return Prepared(
        sa.update(_table)
        .where(_table.c.id == sa.bindparam("b_pk"), condition)
        .values(
            last_sequence=sa.bindparam("b_number"),
            last_notification_at=sa.bindparam("b_now"),
            failures=0,
        )
    )


_last = _table.c.last_sequence
_SET_IF_NONE = _set_number(_last.is_(None))
_SET_IF_SEEN = _set_number(_last == sa.bindparam("b_seen"))
_SET_IF_ABOVE = _set_number(sa.or_(_last.is_(None), _last < sa.bindparam("b_number")))
_mine = _table.c.id == sa.bindparam("b_pk")
_TOUCH = Prepared(
    sa.update(_table).where(_mine).values(last_notification_at=sa.bindparam("b_now"), failures=0)
)
_RENEW_NOW = sa.update(_table).where(_mine).values(renew_requested_at=sa.bindparam("b_now"))
# Removed at the provider: the keeper makes a new one at once (polling covers the gap).
_REMOVED = (
    sa.update(_table)
    .where(_mine, _table.c.state == ChannelState.ACTIVE)
    .values(
        state=ChannelState.FAILING,
        last_error="the provider removed the subscription",
        last_attempt_at=None,
    )
)
_notifications = SQLModel.metadata.tables[Notification.__tablename__]
_RECORD = Prepared(
    sa.insert(_notifications).values(
        {
            column: sa.bindparam(column)
            for column in (
                "channel_id",
                "calendar_id",
                "message_number",
                "kind",
                "outcome",
                "received_at",
            )
        }
    )
)


def _known(value: T | None) -> T:
    assert value is not None
    return value


@dataclass(slots=True)
class _Waiting:
    """One request's notices: recorded in the same batch, answered together."""

    pushes: list[Incoming]
    future: asyncio.Future[list[Handled]]
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
        gather_seconds: float = GATHER_SECONDS,
        likely_echo: Callable[[int], bool] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.jobs = jobs
        self.wake = wake
        # Whether calsync wrote to a calendar lately (record_notifications).
        self.likely_echo = likely_echo
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        # Requests handed over together (None: stop). A request waits in `_pending` (by its
        # event loop) until its loop goes round: the requests one pass of the loop read go
        # over in one put, since every put that wakes the thread costs the loop a system call.
        self._inbox: queue.SimpleQueue[list[_Waiting] | None] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Waiting]] = {}
        # Channel ids of notifications that failed to be recorded (dict: insertion order).
        self._lost: dict[str, None] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def submit(self, push: Incoming) -> Handled:
        """Record `push` (with whatever else is waiting) and return what became of it."""
        return (await self.submit_all([push]))[0]

    async def submit_all(self, pushes: list[Incoming]) -> list[Handled]:
        """Record the notices of one request in one batch (so they count as one announcement
        per calendar), with whatever else is waiting; what became of each."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(pushes, loop.create_future(), loop)
        with self._lock:
            closed = self._closed
            if not closed:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="calsync-webhooks", daemon=True
                    )
                    self._thread.start()
                pending = self._pending.setdefault(loop, [])
                pending.append(waiting)
                if len(pending) == 1:
                    loop.call_soon(self._hand_over, loop)
        if closed:  # shutting down: a late notification is still recorded before its answer
            return await asyncio.to_thread(self.record, pushes)
        return await waiting.future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """The requests `loop` brought since its last hand-over, to the thread in one put."""
        with self._lock:
            pending = self._pending.pop(loop, None)
            if pending:  # (close() may have handed them over already)
                self._inbox.put(pending)

    def remember_lost(self, labels: Sequence[str]) -> None:
        """These subscriptions' notices (by key or remote id) were not recorded (the answer
        told the provider to retry, but its retries may run out): their calendars get a sync
        once recording works."""
        with self._lock:
            for label in labels:
                self._lost[label] = None
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
                    for row in connection.execute(_LOST, {"ids": lost, "remote": lost})
                    if row.state != ChannelState.STOPPED
                }
            )
            if calendars:
                self.jobs.enqueue_in(connection, calendars, SyncKind.WEBHOOK, now=self.clock.now())
        with self._lock:
            for label in lost:
                self._lost.pop(label, None)
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
                # Requests whose loop has not gone round yet are recorded before it stops.
                for pending in self._pending.values():
                    self._inbox.put(pending)
                self._pending.clear()
                self._inbox.put(None)
        if thread is not None:
            thread.join()

    def record(self, pushes: Sequence[Incoming]) -> list[Handled]:
        """Blocking (any thread): record `pushes` in one transaction on a connection of the
        pool, and wake the workers if that queued a job."""
        with self.db.connect() as connection:
            return self._record_on(connection, pushes)

    def _record_on(self, connection: sa.Connection, pushes: Sequence[Incoming]) -> list[Handled]:
        with connection.begin():
            recorded = record_notifications(
                connection, self.jobs, pushes, self.clock.now(), self.likely_echo
            )
        if recorded.queued:
            # A job joined was debounced (not due yet), so only a new job is worth a wake-up.
            self.wake()
        return recorded.handled

    def _run(self) -> None:
        # The thread keeps one connection (no checkout, reset or ping per batch); after a
        # failure it takes a fresh one.
        connection: sa.Connection | None = None
        waiting: list[_Waiting] = []  # handed over, not recorded yet
        last = 0  # requests in the last batch
        try:
            closing = False
            while waiting or not closing:
                gather = False
                if not waiting:
                    first = self._inbox.get()
                    if first is None:
                        return
                    waiting = first
                    # A burst, and fewer requests than last time: the loop's next lot joins.
                    gather = last > 1 and len(waiting) < last
                while not closing and _count(waiting) < self.max_batch:
                    try:
                        if gather:
                            gather = False
                            item = self._inbox.get(timeout=self.gather_seconds)
                        else:
                            item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        closing = True
                        break
                    waiting += item
                # At most max_batch notices (a request's always together), at least a request.
                size, taken = 0, 0
                while taken < len(waiting) and (
                    not taken or size + len(waiting[taken].pushes) <= self.max_batch
                ):
                    size += len(waiting[taken].pushes)
                    taken += 1
                batch, waiting = waiting[:taken], waiting[taken:]
                last = len(batch)
                connection = self._handle(batch, connection)
        finally:
            if connection is not None:
                _close(connection)

    def _handle(
        self, batch: list[_Waiting], connection: sa.Connection | None
    ) -> sa.Connection | None:
        """Record `batch` and answer its requests whatever happens; the connection to go on with."""
        results: list[list[Handled] | BaseException]
        try:
            if connection is None:
                connection = self.db.connect()
            handled = self._record_on(connection, [p for w in batch for p in w.pushes])
            results, at = [], 0
            for waiting in batch:
                results.append(handled[at : at + len(waiting.pushes)])
                at += len(waiting.pushes)
        except Exception as exc:
            if connection is not None:
                _close(connection)
                connection = None
            # One request at a time, each on a connection of the pool (checked before use):
            # the kept connection may just have died with a database restart, and a lone
            # notification deserves that second try as much as a batch of them.
            log.warning("recording %d request(s) failed (%s); one at a time", len(batch), exc)
            results = [self._alone(w.pushes) for w in batch]
        failed = [
            p.label for w, r in zip(batch, results, strict=True) if _failed(r) for p in w.pushes
        ]
        if failed:
            self.remember_lost(failed)
        for loop in {w.loop for w in batch}:
            mine = [(w.future, r) for w, r in zip(batch, results, strict=True) if w.loop is loop]
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, mine)
        return connection

    def _alone(self, pushes: list[Incoming]) -> list[Handled] | BaseException:
        try:
            return self.record(pushes)
        except Exception as exc:
            log.exception("recording a notification for %s failed", pushes[0].label)
            return exc


def _count(requests: list[_Waiting]) -> int:
    return sum(len(w.pushes) for w in requests)


def _failed(result: list[Handled] | BaseException) -> bool:
    return isinstance(result, BaseException)


def _close(connection: sa.Connection) -> None:
    try:
        connection.close()
    except Exception:  # a broken connection: the pool has discarded it
        log.exception("closing the webhook connection failed")


def _settle(
    results: list[tuple[asyncio.Future[list[Handled]], list[Handled] | BaseException]],
) -> None:
    for future, result in results:
        if future.done():  # the request went away (cancelled)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
