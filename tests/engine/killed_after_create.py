"""A sync in a process of its own that dies by SIGKILL the moment a Microsoft create has been
answered, before calsync records it: what a power cut or `kill -9` between the create and the
commit leaves behind. Run by test_microsoft_engine.py:

    python -m tests.engine.killed_after_create <settings JSON> <calendar id>
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from calsync_server.db.engine import create_db_engine
from calsync_server.providers.model import BlockAction, BlockOp, BlockResult, Provider
from calsync_server.providers.registry import ProviderFactory
from calsync_server.sync.engine import SyncEngine, default_factory
from shared.settings import Settings
from tests.support.world import FAST_RETRY

# The exit status that says the sync ended without ever creating a Microsoft block.
NO_CREATE = 3


class KilledAfterCreate:
    """A provider whose creates reach Graph, after which the process is killed at once."""

    def __init__(self, provider: Provider) -> None:
        self.inner = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, ops: Sequence[BlockOp]) -> list[BlockResult]:
        results: list[BlockResult] = self.inner.apply(ops)
        if any(op.action is BlockAction.CREATE for op in ops):
            os.kill(os.getpid(), signal.SIGKILL)
        return results


def killing(inner: ProviderFactory) -> ProviderFactory:
    def build(name: str, account_id: int | None, credentials: Any) -> Provider:
        provider = inner(name, account_id, credentials)
        return KilledAfterCreate(provider) if name == "microsoft" else provider

    return build


def main(argv: list[str]) -> int:
    settings = msgspec.json.decode(argv[0], type=Settings, dec_hook=lambda kind, value: kind(value))
    db = create_db_engine(settings.database_url_resolved)
    engine = SyncEngine(
        db, settings, provider_factory=killing(default_factory(settings, FAST_RETRY))
    )
    engine.sync_calendar(int(argv[1]))
    return NO_CREATE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
