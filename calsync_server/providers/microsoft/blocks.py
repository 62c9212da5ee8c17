"""Writing busy blocks: JSON `$batch` of 20, each item retried after its own Retry-After;
creates deduplicated by transactionId; blocks found again by calsync's mark."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import quote

import msgspec

from calsync_server.providers.microsoft.client import MAX_BATCH, Answer, BatchItem, GraphClient
from calsync_server.providers.microsoft.mapping import (
    MARK_ID,
    TRANSIENT_STATUSES,
    block_body,
    mark_of,
    to_remote_event,
)
from calsync_server.providers.microsoft.wire import EventPage, GraphEvent
from calsync_server.providers.model import (
    BlockAction,
    BlockOp,
    BlockResult,
    ErrorKind,
    ProviderError,
    RemoteEvent,
)

# Only calsync's own property comes back with an event.
EXPAND = f"singleValueExtendedProperties($filter=id eq '{MARK_ID}')"
MARKED = f"singleValueExtendedProperties/Any(ep: ep/id eq '{MARK_ID}')"


def _events_path(calendar_id: str) -> str:
    return f"/me/calendars/{quote(calendar_id, safe='')}/events"


def request_for(op: BlockOp, item_id: str) -> BatchItem:
    """The Graph request one block operation is."""
    events = _events_path(op.calendar_id)
    headers = {"if-match": op.version} if op.version else None
    if op.action is BlockAction.CREATE:
        if op.content is None:
            raise ValueError("a create needs the block's content")
        return BatchItem(item_id, "POST", events, block_body(op.content, digest=op.digest))
    if op.block_id is None:
        raise ValueError(f"a {op.action.value} needs the block's id")
    path = f"{events}/{quote(op.block_id, safe='')}"
    if op.action is BlockAction.UPDATE:
        if op.content is None:
            raise ValueError("an update needs the block's content")
        return BatchItem(item_id, "PATCH", path, block_body(op.content), headers)
    if op.action is BlockAction.DELETE:
        return BatchItem(item_id, "DELETE", path, None, headers)
    # A batch item's URL is sent as written: its query must already be encoded.
    return BatchItem(item_id, "GET", f"{path}?$expand={quote(EXPAND, safe='()=')}")


def result_for(op: BlockOp, answer: Answer) -> BlockResult:
    """What became of one operation, from its answer."""
    if not answer.ok:
        return BlockResult(op, error=answer.error())
    if op.action is BlockAction.DELETE:
        return BlockResult(op)
    try:
        event = msgspec.convert(answer.body, GraphEvent)
    except msgspec.ValidationError as exc:
        return BlockResult(op, error=ProviderError(ErrorKind.INVALID, f"unreadable event: {exc}"))
    # A create's or update's answer does not carry the mark; calsync just wrote it.
    source = op.content.source_key if op.content is not None else None
    return BlockResult(op, block=to_remote_event(event, block_source=source))


class BlockWriter:
    """Runs block operations through a client: batches in parallel up to the mailbox's limit,
    items that were throttled or failed transiently sent again in a later batch."""

    def __init__(self, client: GraphClient, *, max_attempts: int = 5, parallel: int = 4) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.parallel = parallel

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        results: list[BlockResult | None] = [None] * len(ops)
        requests: dict[int, BatchItem] = {}
        for index, op in enumerate(ops):
            try:
                requests[index] = request_for(op, str(index))
            except ValueError as exc:
                results[index] = BlockResult(op, error=ProviderError(ErrorKind.INVALID, str(exc)))
        if len(requests) == 1:
            ((index, item),) = requests.items()
            results[index] = self._single(ops[index], item)
        elif requests:
            chunks = _chunks(sorted(requests), MAX_BATCH)
            with ThreadPoolExecutor(min(self.parallel, len(chunks))) as pool:
                done = pool.map(lambda chunk: self._batch(ops, requests, chunk), chunks)
                for found in done:
                    for index, result in found.items():
                        results[index] = result
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _single(self, op: BlockOp, item: BatchItem) -> BlockResult:
        try:
            answer = self.client.send(
                item.method, item.url, json=item.body, headers=item.headers or None
            )
        except ProviderError as exc:
            return BlockResult(op, error=exc)
        if answer.status == 0:
            return BlockResult(op, error=ProviderError(ErrorKind.TRANSIENT, str(answer.body)))
        return result_for(op, answer)

    def _batch(
        self, ops: Sequence[BlockOp], requests: dict[int, BatchItem], chunk: list[int]
    ) -> dict[int, BlockResult]:
        """One chunk of at most 20, its transient items retried after the longest
        Retry-After among them (Graph throttles items of a batch one by one)."""
        results: dict[int, BlockResult] = {}
        pending = list(chunk)
        attempt = 0
        while pending:
            try:
                answers = self.client.batch([requests[i] for i in pending])
            except ProviderError as exc:
                for index in pending:
                    results[index] = BlockResult(ops[index], error=exc)
                return results
            again: list[int] = []
            waits: list[float] = []
            for index in pending:
                answer = answers[str(index)]
                if answer.status in TRANSIENT_STATUSES and attempt + 1 < self.max_attempts:
                    again.append(index)
                    waits.append(self.client.backoff(attempt, answer.retry_after()))
                else:
                    results[index] = result_for(ops[index], answer)
            if not again:
                break
            wait = max(waits)
            if wait > self.client.max_wait_s:
                for index in again:
                    results[index] = result_for(ops[index], answers[str(index)])
                break
            statuses = sorted({answers[str(i)].status for i in again})
            self.client.count(
                retries=len(again), note=f"retried after {', '.join(map(str, statuses))}"
            )
            self.client.sleep(wait)
            pending, attempt = again, attempt + 1
        return results


def _chunks(indexes: list[int], size: int) -> list[list[int]]:
    return [indexes[i : i + size] for i in range(0, len(indexes), size)]


def list_blocks(
    client: GraphClient, calendar_id: str, window: tuple[datetime, datetime]
) -> list[RemoteEvent]:
    """calsync's blocks in a calendar that overlap the window, found by the mark (never the
    title), each with its source key: the full reconcile adopts a block whose row was lost and
    deletes a second block of one source from these."""
    begin, finish = window
    url = _events_path(calendar_id)
    params: dict[str, str] | None = {"$filter": MARKED, "$expand": EXPAND, "$top": "100"}
    found: list[RemoteEvent] = []
    while True:
        answer = client.call("GET", url, params=params)
        page = msgspec.convert(answer.body, EventPage)
        for item in page.value:
            if item.start is None or item.end is None or mark_of(item) is None:
                continue
            event = to_remote_event(item)
            if event.end.to_utc() > begin and event.start.to_utc() < finish:
                found.append(event)
        if page.next_link is None:
            return found
        url, params = page.next_link, None
