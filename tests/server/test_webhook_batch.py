"""Webhook group commit: notifications arriving together are recorded in one transaction, each
answered only after that commit, with the same outcomes as one at a time."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from calsync_server.db.engine import create_db_engine, upgrade_database
from calsync_server.db.models import Notification, PushSubscription, SyncJob
from calsync_server.jobs.queue import MAX_DEBOUNCE, JobQueue
from calsync_server.providers.model import Notice, NoticeKind
from calsync_server.push.webhook_batch import (
    DEBOUNCE_SECONDS,
    Incoming,
    WebhookBatcher,
    advance_message_number,
    record_notifications,
)
from calsync_server.sync.recent_writes import RecentWrites
from shared.clock import FixedClock
from shared.domain import ChannelState, JobState, NotificationOutcome, SyncKind
from tests.server.conftest import ServerWorld
from tests.server.test_webhooks import headers_of, notify
from tests.support.rows import add_calendars
from tests.support.waiting import wait_until

START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
DEBOUNCE = timedelta(seconds=DEBOUNCE_SECONDS)
ENQUEUED, COALESCED = NotificationOutcome.ENQUEUED, NotificationOutcome.COALESCED
DUPLICATE, FORGED = NotificationOutcome.DUPLICATE, NotificationOutcome.FORGED
SYNC_MESSAGE, UNKNOWN = NotificationOutcome.SYNC_MESSAGE, NotificationOutcome.UNKNOWN_CHANNEL


# -- over HTTP -------------------------------------------------------------------------------


def _last_ids(world: ServerWorld) -> tuple[int, int]:
    with Session(world.db) as session:
        notification = session.exec(select(func.max(Notification.id))).one()
        job = session.exec(select(func.max(SyncJob.id))).one()
    return notification or 0, job or 0


async def _burst(url: str, requests: list[dict[str, str]]) -> list[httpx.Response]:
    """Every request at once, each on a connection of its own."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(client.post("webhooks/google", headers=headers) for headers in requests)
        )


def _outcome(answer: httpx.Response) -> str:
    if answer.status_code == 403:
        return "forged"
    assert answer.status_code == 200, answer.text
    outcome: str = answer.json()["outcome"]
    return outcome


def test_a_concurrent_burst_gets_the_answers_rows_and_jobs_of_one_at_a_time(
    server_world: ServerWorld, unique: str
) -> None:
    world = server_world
    cals = world.account(f"burst-{unique}@example.com", "Team", "Ops")
    calendars = [cals["primary"], cals["Team"], cals["Ops"]]
    world.configure(*calendars)
    world.start()
    with world.api() as api:
        world.wait_for_channels(*calendars)
        wait_until(lambda: world.settled(api), what="the initial syncs")
        channels = [world.channel(cal) for cal in calendars]
        last_notification, last_job = _last_ids(world)

        # Each channel's next notification delivered five times over (Google retries, or two
        # routes), a forger guessing at the first channel, and channels nobody knows.
        fresh = {c.key: (c.last_sequence or 0) + 100 for c in channels if c}
        requests: list[dict[str, str]] = []
        for channel in channels:
            assert channel is not None
            requests += [headers_of(channel, fresh[channel.key])] * 5
        first = channels[0]
        assert first is not None
        for n in range(4):
            requests.append(
                headers_of(first, fresh[first.key] + 1 + n) | {"X-Goog-Channel-Token": f"guess-{n}"}
            )
        requests.append(headers_of(first, fresh[first.key] + 9) | {"X-Goog-Resource-ID": "another"})
        for n in range(5):
            requests.append(
                headers_of(first, 7)
                | {"X-Goog-Channel-ID": f"nobody-{unique}-{n}", "X-Goog-Channel-Token": ""}
            )
        answers = asyncio.run(_burst(world.url, requests))

        said = [
            (r["X-Goog-Channel-ID"], int(r["X-Goog-Message-Number"]), _outcome(a))
            for r, a in zip(requests, answers, strict=True)
        ]
        for channel in channels:
            assert channel is not None
            mine = sorted(o for c, _n, o in said if c == channel.key and o != "forged")
            # Exactly one delivery counts; it found no waiting job, so it queued one.
            assert mine == ["duplicate"] * 4 + ["enqueued"], (channel.key, said)
        assert [o for c, _n, o in said if c == first.key].count("forged") == 5
        assert [o for c, _n, o in said if c.startswith("nobody-")] == ["unknown_channel"] * 5

        # Every answer is a recorded row, and nothing else was recorded.
        with Session(world.db) as session:
            rows = session.exec(
                select(Notification).where(col(Notification.id) > last_notification)
            ).all()
            assert Counter((n.channel_id, n.message_number, str(n.outcome)) for n in rows) == (
                Counter(said)
            )
            for channel, cal in zip(channels, calendars, strict=True):
                assert channel is not None
                assert {n.calendar_id for n in rows if n.channel_id == channel.key} == {cal.id}
                stored = session.get(PushSubscription, channel.id)
                assert stored is not None
                assert stored.last_sequence == fresh[channel.key]
            new_jobs = session.exec(select(SyncJob).where(col(SyncJob.id) > last_job)).all()
            assert sorted(j.calendar_id for j in new_jobs) == sorted(c.id for c in calendars)
            assert {str(j.kind) for j in new_jobs} == {"webhook"}
        wait_until(lambda: world.settled(api), what="the burst's syncs")


def test_the_batcher_thread_ends_with_the_server(server_world: ServerWorld, unique: str) -> None:
    world = server_world
    cal = world.account(f"stop-{unique}@example.com")["primary"]
    world.configure(cal)
    # Batchers of other tests in this process (pytest-xdist runs many per worker) are not ours.
    others = {t for t in threading.enumerate() if t.name == "calsync-webhooks"}
    world.start()
    world.wait_for_channels(cal)
    channel = world.channel(cal)
    assert channel is not None
    answer = notify(world, headers_of(channel, (channel.last_sequence or 0) + 1))
    assert answer.status_code == 200, answer.text
    assert any(t.name == "calsync-webhooks" and t not in others for t in threading.enumerate())
    world.stop()
    assert not any(t.name == "calsync-webhooks" and t not in others for t in threading.enumerate())


# -- in the database -------------------------------------------------------------------------


def _channels(db: sa.Engine) -> tuple[list[int], dict[str, int]]:
    """Calendars a and b; channel "a" (last number 10), "b" (new), "c" (stopped, on b)."""
    upgrade_database(db)
    with Session(db) as session:
        calendars = add_calendars(session, "a", "b")
        rows = {
            "a": PushSubscription(calendar_id=calendars[0], key="a", last_sequence=10),
            "b": PushSubscription(calendar_id=calendars[1], key="b"),
            "c": PushSubscription(
                calendar_id=calendars[1],
                key="c",
                state=ChannelState.STOPPED,
                last_sequence=3,
            ),
        }
        for name, row in rows.items():
            row.remote_id, row.resource, row.secret = name, f"resource-{name}", f"token-{name}"
            row.address, row.created_at = "http://calsync/webhooks/google", START
            session.add(row)
        session.commit()
        ids = {name: row.id for name, row in rows.items() if row.id is not None}
    return calendars, ids


def push(
    channel: str, number: int, state: str = "exists", *, token: str = "", resource: str = ""
) -> Incoming:
    """A Google notice as the legacy route hands it over (found by the channel id)."""
    kind = NoticeKind.OPENED if state == "sync" else NoticeKind.CHANGED
    notice = Notice(
        remote_id=channel,
        kind=kind,
        secret=token or f"token-{channel}",
        sequence=number,
        resource=resource or f"resource-{channel}",
        calendar="x",
    )
    return Incoming("google", notice)


def _queued(db: sa.Engine) -> dict[int, SyncJob]:
    with Session(db) as session:
        jobs = session.exec(select(SyncJob).where(SyncJob.state == JobState.QUEUED)).all()
    return {job.calendar_id: job for job in jobs}


def _recorded(db: sa.Engine) -> list[tuple[str, int | None, int | None, str]]:
    with Session(db) as session:
        rows = session.exec(select(Notification).order_by(col(Notification.id))).all()
    return [(n.channel_id, n.calendar_id, n.message_number, str(n.outcome)) for n in rows]


def test_one_batch_decides_in_arrival_order_and_debounces_like_one_at_a_time(
    db_engine: sa.Engine,
) -> None:
    (a, b), _ = _channels(db_engine)
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock)
    batch = [
        push("a", 12),  # fresh: queues a's sync
        push("a", 12),  # the same again, in the same batch
        push("a", 11),  # older than the one before it
        push("a", 15, token="token-b"),  # another channel's token
        push("a", 15, resource="resource-b"),  # another channel's resource
        push("a", 14),  # fresh: joins the job 12 queued, debouncing it
        push("b", 1, "sync"),  # a new channel's first message
        push("b", 2),  # fresh: queues b's sync
        push("c", 5),  # a stopped channel
        push("nobody", 1),  # a channel calsync never made
    ]
    with db_engine.begin() as connection:
        recorded = record_notifications(connection, queue, batch, clock.now())

    outcomes = [h.outcome for h in recorded.handled]
    assert outcomes == [
        *(ENQUEUED, DUPLICATE, DUPLICATE, FORGED, FORGED, COALESCED),
        *(SYNC_MESSAGE, ENQUEUED, UNKNOWN, UNKNOWN),
    ]
    assert [h.stop for h in recorded.handled] == [False] * 8 + [True, True]
    assert recorded.queued
    assert _recorded(db_engine) == [
        (p.label, cal, p.notice.sequence, o.value)
        for p, cal, o in zip(batch, [a] * 6 + [b, b, b, None], outcomes, strict=True)
    ]
    with Session(db_engine) as session:
        numbers = {c.key: c for c in session.exec(select(PushSubscription))}
    assert numbers["a"].last_sequence == 14
    assert numbers["a"].last_notification_at == START
    assert numbers["b"].last_sequence == 2
    assert numbers["c"].last_sequence == 3  # a stopped channel's numbers stay put
    # a's job was joined in the batch, so it waits for a pause; b's first one runs at once.
    jobs = _queued(db_engine)
    assert {cal: job.run_after for cal, job in jobs.items()} == {a: START + DEBOUNCE, b: START}

    # Later batches keep joining a's job, until it has waited MAX_DEBOUNCE in all.
    clock.advance(timedelta(seconds=1))
    with db_engine.begin() as connection:
        later = record_notifications(connection, queue, [push("a", 14), push("a", 16)], clock.now())
    assert [h.outcome for h in later.handled] == [DUPLICATE, COALESCED]
    assert not later.queued
    assert _queued(db_engine)[a].run_after == clock.now() + DEBOUNCE
    clock.advance(MAX_DEBOUNCE)
    with db_engine.begin() as connection:
        record_notifications(connection, queue, [push("a", 17)], clock.now())
    assert _queued(db_engine)[a].run_after == START + MAX_DEBOUNCE
    assert _queued(db_engine)[a].id == jobs[a].id


def test_a_calendar_calsync_wrote_to_lately_waits_behind_a_persons_change(
    db_engine: sa.Engine,
) -> None:
    """Its notification is most likely the echo of calsync's writes: its new job waits as a
    joined one does, so the other calendar's job (a person's change) is claimed first."""
    (a, b), _ = _channels(db_engine)
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock)
    written = RecentWrites(clock=lambda: 100.0)
    written.wrote([a])
    with db_engine.begin() as connection:
        echo = record_notifications(
            connection, queue, [push("a", 11), push("a", 12)], clock.now(), written.lately
        )
    assert [h.outcome for h in echo.handled] == [ENQUEUED, COALESCED]
    assert not echo.queued  # not due yet: no worker is woken for it
    assert _queued(db_engine)[a].run_after == START + DEBOUNCE
    with db_engine.begin() as connection:
        change = record_notifications(
            connection, queue, [push("b", 1)], clock.now(), written.lately
        )
    assert [h.outcome for h in change.handled] == [ENQUEUED]
    assert change.queued
    assert _queued(db_engine)[b].run_after == START
    assert queue.claim("w") is not None
    assert queue.claim("w") is None
    clock.advance(DEBOUNCE)
    claimed = queue.claim("w")
    assert claimed is not None
    assert claimed.calendar_id == a


def test_recent_writes_are_forgotten_once_out_of_the_window() -> None:
    now = [0.0]
    written = RecentWrites(10.0, clock=lambda: now[0])
    written.wrote([1, 2])
    now[0] = 5.0
    written.wrote([2])
    assert written.lately(1)
    assert written.lately(2)
    assert not written.lately(3)
    now[0] = 12.0
    assert not written.lately(1)
    assert written.lately(2)
    written.wrote([3])  # (1 leaves the dict here)
    now[0] = 15.0
    assert not written.lately(2)
    assert written.lately(3)


def test_enqueue_in_counts_repeats_as_successive_requests(db_engine: sa.Engine) -> None:
    upgrade_database(db_engine)
    with Session(db_engine) as session:
        a, b = add_calendars(session, "a", "b")
    clock = FixedClock(START)
    queue = JobQueue(db_engine, clock)
    with db_engine.begin() as connection:
        answers = queue.enqueue_in(connection, [b, a, b], SyncKind.MANUAL)
    assert [e.coalesced for e in answers] == [False, False, True]
    assert answers[0].job_id == answers[2].job_id != answers[1].job_id
    # A full request widens the waiting job, and a claimed job is no longer joined.
    assert queue.enqueue(a, SyncKind.FULL, full=True).job_id == answers[1].job_id
    claimed = queue.claim("w1", calendar_ids={a})
    assert claimed is not None
    assert claimed.full is True
    again = queue.enqueue(a, SyncKind.WEBHOOK, debounce_seconds=DEBOUNCE_SECONDS)
    assert not again.coalesced
    assert again.job_id != claimed.id
    assert set(_queued(db_engine)) == {a, b}


def test_a_number_another_process_moved_meanwhile_is_checked_one_at_a_time(
    db_engine: sa.Engine,
) -> None:
    _, ids = _channels(db_engine)
    # This batch read 3; another process has since taken 10.
    with db_engine.begin() as connection:
        accepted = advance_message_number(connection, ids["a"], 3, [4, 10, 11, 13], START)
    assert accepted == [False, False, True, True]
    with Session(db_engine) as session:
        channel = session.get(PushSubscription, ids["a"])
        assert channel is not None
        assert channel.last_sequence == 13


def test_deliveries_racing_in_two_processes_count_once(database_url: str) -> None:
    """Two servers (two engines, two batchers) get the same deliveries at the same moment."""
    engines = [create_db_engine(database_url) for _ in range(2)]
    try:
        (a, _b), _ = _channels(engines[0])
        clock = FixedClock(START)
        pushes = [push("a", 10 + n) for n in range(1, 41)]

        def deliver(db: sa.Engine) -> list[NotificationOutcome]:
            queue = JobQueue(db, clock)
            outcomes: list[NotificationOutcome] = []
            for start in range(0, len(pushes), 4):
                with db.begin() as connection:
                    batch = pushes[start : start + 4]
                    recorded = record_notifications(connection, queue, batch, clock.now())
                outcomes += [h.outcome for h in recorded.handled]
            return outcomes

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(deliver, engines))
        counted = Counter(
            p.notice.sequence
            for outcomes in results
            for p, o in zip(pushes, outcomes, strict=True)
            if o is not DUPLICATE
        )
        assert max(counted.values()) == 1, counted
        assert counted[50] == 1  # the newest is counted by one of them
        assert (results[0] + results[1]).count(ENQUEUED) == 1
        assert list(_queued(engines[0])) == [a]
    finally:
        for engine in engines:
            engine.dispose()


# -- the batcher -----------------------------------------------------------------------------


def _poison(db: sa.Engine) -> None:
    """A database that refuses to store a notification of channel "poison"."""
    with db.begin() as connection:
        if db.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON notification "
                "WHEN NEW.channel_id = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned notification'); END"
            )
            return
        connection.exec_driver_sql(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.channel_id = 'poison' THEN RAISE EXCEPTION 'poisoned notification'; END IF; "
            "RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER poison BEFORE INSERT ON notification "
            "FOR EACH ROW EXECUTE FUNCTION poison()"
        )


def test_a_notification_the_database_refuses_fails_alone(
    db_engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    (a, b), ids = _channels(db_engine)
    _poison(db_engine)
    woken: list[int] = []
    batcher = WebhookBatcher(
        db_engine,
        FixedClock(START),
        JobQueue(db_engine, FixedClock(START)),
        lambda: woken.append(1),
    )
    pushes = [push("a", 11), push("a", 12), push("poison", 1), push("b", 1), push("nobody", 2)]

    async def deliver() -> list[Any]:
        # Another transaction holds channel a's row: the batcher's first batch waits on it, and
        # what arrives meanwhile makes up the next batch, the poisoned notification with others.
        with db_engine.connect() as holder:
            holder.execute(
                sa.update(PushSubscription)
                .where(col(PushSubscription.id) == ids["a"])
                .values(failures=col(PushSubscription.failures))
            )
            tasks = [asyncio.create_task(batcher.submit(p)) for p in pushes]
            await asyncio.sleep(0)  # one turn of the loop: every task hands its push in
            holder.commit()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(deliver())
    finally:
        batcher.close()
    assert isinstance(results[2], sa.exc.DBAPIError), results
    assert "poisoned notification" in str(results[2])
    assert [r.outcome for r in results[:2] + results[3:]] == [
        ENQUEUED,
        COALESCED,
        ENQUEUED,
        UNKNOWN,
    ]
    assert [row for row in _recorded(db_engine)] == [
        ("a", a, 11, "enqueued"),
        ("a", a, 12, "coalesced"),
        ("b", b, 1, "enqueued"),
        ("nobody", None, 2, "unknown_channel"),
    ]
    assert woken  # new jobs wake the workers
    assert not any(t.name == "calsync-webhooks" for t in threading.enumerate())

    # Once closed (the server is stopping), a late notification is still recorded first.
    late = asyncio.run(batcher.submit(push("b", 5)))
    assert late.outcome is COALESCED
    assert _recorded(db_engine)[-1] == ("b", b, 5, "coalesced")


def test_requests_not_handed_over_yet_are_recorded_when_the_batcher_closes(
    db_engine: sa.Engine,
) -> None:
    (a, _b), _ids = _channels(db_engine)
    batcher = WebhookBatcher(
        db_engine, FixedClock(START), JobQueue(db_engine, FixedClock(START)), lambda: None
    )

    async def deliver() -> list[Any]:
        tasks = [asyncio.create_task(batcher.submit(push("a", n))) for n in (11, 12)]
        # One turn: both requests wait for their loop's hand-over, which is queued behind this
        # coroutine; the server stops meanwhile (the loop's own thread closes the batcher).
        await asyncio.sleep(0)
        batcher.close()
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)

    results = asyncio.run(deliver())
    assert [r.outcome for r in results] == [ENQUEUED, COALESCED]
    assert _recorded(db_engine) == [("a", a, 11, "enqueued"), ("a", a, 12, "coalesced")]


def test_while_a_burst_lasts_the_next_lot_joins_the_transaction(db_engine: sa.Engine) -> None:
    """After a batch of several requests, the thread waits (up to its gather time) for the
    event loop's next lot before committing a smaller one: a burst costs fewer commits. A lone
    request after a lone one is committed at once (a gather time of minutes would show)."""
    (a, _b), _ids = _channels(db_engine)
    commits: list[int] = []

    def count(_connection: sa.Connection) -> None:
        commits.append(1)

    sa.event.listen(db_engine, "commit", count)
    batcher = WebhookBatcher(
        db_engine,
        FixedClock(START),
        JobQueue(db_engine, FixedClock(START)),
        lambda: None,
        gather_seconds=600,
    )

    async def deliver() -> list[Any]:
        # One request alone, then another: neither waits for a lot that does not come.
        alone = [await asyncio.wait_for(batcher.submit(push("b", n)), 60) for n in (1, 2)]
        alone_commits = len(commits)
        # Two requests in one turn of the loop: one transaction, and a burst has begun.
        pair = await asyncio.gather(batcher.submit(push("a", 11)), batcher.submit(push("a", 12)))
        # Then one request, and the next 50 ms later (the thread has taken the first by then):
        # the first waits for the second, and both are committed together.
        first = asyncio.ensure_future(batcher.submit(push("a", 13)))
        await asyncio.sleep(0.05)
        second = await asyncio.wait_for(batcher.submit(push("a", 14)), 60)
        return [alone, alone_commits, pair, await first, second, len(commits)]

    try:
        alone, alone_commits, pair, first, second, all_commits = asyncio.run(deliver())
    finally:
        batcher.close()
        sa.event.remove(db_engine, "commit", count)
    assert [r.outcome for r in alone] == [ENQUEUED, COALESCED]
    assert alone_commits == 2
    assert [r.outcome for r in pair] == [ENQUEUED, COALESCED]
    assert [first.outcome, second.outcome] == [COALESCED, COALESCED]
    assert all_commits == alone_commits + 2  # the pair's, then the last two's together
    assert _recorded(db_engine)[-2:] == [("a", a, 13, "coalesced"), ("a", a, 14, "coalesced")]
