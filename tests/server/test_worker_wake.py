"""A wake-up (a job queued) sends one idle worker to claim, not every worker: all of them
claimed, and all but one found nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from calsync_server import runtime as runtime_module
from calsync_server.db.models import SyncJob
from calsync_server.runtime import Runtime
from shared.settings import load_settings
from tests.support.waiting import wait_until


async def test_a_wake_up_sends_one_idle_worker_to_claim(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle workers look for other processes' jobs only after a minute: every claim below
    # comes of the wake-up.
    monkeypatch.setattr(runtime_module, "IDLE_POLL_SECONDS", 60.0)
    settings = load_settings(
        {
            "home": str(tmp_path / "home"),
            "database_url": database_url,
            "workers": 3,
            "poll_interval_seconds": 3600,
        },
        environ={},
    )
    runtime = Runtime(settings)
    claims: list[str] = []
    claim_next = runtime.queue.claim_next

    def counted(worker: str, **kwargs: Any) -> tuple[SyncJob | None, bool]:
        # The real claim, each one written down (it runs on the connection's own cursor,
        # which SQLAlchemy's statement events do not see).
        claims.append(worker)
        return claim_next(worker, **kwargs)

    monkeypatch.setattr(runtime.queue, "claim_next", counted)
    await runtime.start()
    try:
        # Waited on from a thread: the workers run on this test's event loop.
        idle = lambda: runtime.idle_workers == 3  # noqa: E731
        await asyncio.to_thread(wait_until, idle, 10, 0.02, "idle workers")
        claims.clear()
        runtime.wake()
        await asyncio.to_thread(wait_until, lambda: claims, 10, 0.02, "a claim")
        await asyncio.to_thread(wait_until, idle, 10, 0.02, "the worker idle again")
        assert len(claims) == 1
    finally:
        await runtime.stop()
