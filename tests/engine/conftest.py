"""The engine tier: calsync's engine between a real database and the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from calsync_server.emulators.google.runner import RunningEmulator
from tests.support.world import World


@pytest.fixture
def world(emulator: RunningEmulator, database_url: str, tmp_path: Path) -> Iterator[World]:
    built = World(emulator, database_url, tmp_path / "home")
    yield built
    built.close()
