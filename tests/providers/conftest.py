"""The provider tier's CalDAV servers: real Radicale and Xandikos, each behind the fault proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.drivers.caldav import CalDAVServer, Kind, caldav_server


@pytest.fixture(scope="module", params=["radicale", "xandikos"])
def caldav(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CalDAVServer]:
    """One server of each kind per module that asks for it."""
    kind: Kind = request.param
    root: Path = tmp_path_factory.mktemp(kind)
    with caldav_server(kind, root) as server:
        yield server
