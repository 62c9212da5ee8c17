"""Google keeps the provider contract: calsync's Google provider against the emulator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import RunningEmulator, run_emulator
from calsync_server.providers.google import mapping
from calsync_server.providers.registry import block_identity
from calsync_server.sync.planner import CalendarView, block_digest
from shared.domain import BusyTitle, CalendarRole
from tests.providers.contract import ProviderContract
from tests.support.drivers.google import GoogleDriver


@pytest.fixture(scope="module")
def google_emulator() -> Iterator[RunningEmulator]:
    """The module's own emulator: the driver's faults hit every call of it."""
    with run_emulator(EmulatorConfig()) as running:
        yield running


@pytest.fixture
def driver(google_emulator: RunningEmulator, unique: str) -> Iterator[GoogleDriver]:
    made = GoogleDriver(google_emulator, unique)
    yield made
    made.close()


class TestGoogleContract(ProviderContract):
    pass


def test_block_ids_are_the_ones_calsync_always_gave() -> None:
    """Existing users' blocks keep their ids: the planner's digest, through Google's identity
    (as the registry gives it to the engine), is the id calsync always gave."""
    target = CalendarView(
        id=1,
        user_id=1,
        provider_calendar_id="work@example.com",
        sync_enabled=True,
        role=CalendarRole.BOTH,
        busy_title=BusyTitle.PRIVATE,
        include_all_day=False,
        read_only=False,
        account_active=True,
    )
    key = "ab" * 32
    digest = hashlib.sha256(json.dumps(["block", "work@example.com", key]).encode()).digest()
    assert block_digest(target, key) == digest[:20].hex()
    assert block_identity("google")(block_digest(target, key)) == mapping.block_id(
        digest[:20].hex()
    )
    # The id a block of this identity has had since calsync's first release.
    assert mapping.block_id(block_digest(target, key)) == "37nvqgqjfc7icp4n67mf9rrjqhfd63a3"
