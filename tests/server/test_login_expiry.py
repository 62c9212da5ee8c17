"""The 7-day trap: with real Google, the API tells when a "Testing" app's login would end."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from calsync_server.emulators.google.runner import RunningEmulator
from tests.server.conftest import ServerWorld


def _account(world: ServerWorld) -> dict[str, Any]:
    world.start(push=False)
    with world.api() as api:
        (account,) = api.get("/api/v1/accounts").json()
    assert isinstance(account, dict)
    return account


def _expiry(world: ServerWorld) -> object:
    return _account(world)["testing_login_expires_at"]


def _instant(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def test_real_google_accounts_say_when_a_testing_app_login_ends(
    emulator: RunningEmulator, database_url: str, tmp_path: Path, unique: str
) -> None:
    # The account is connected through the emulator; the server believes it talks to Google
    # (nothing is synced, so it never calls out).
    world = ServerWorld(
        emulator, database_url, tmp_path / "home", google_api_url="https://www.googleapis.com/"
    )
    try:
        world.account(f"work-{unique}@example.com")
        account = _account(world)
        # Seven days from the sign-in the API shows (not within a minute of the wall clock).
        signed_in = _instant(account["authorized_at"])
        assert _instant(account["testing_login_expires_at"]) == signed_in + timedelta(days=7)
    finally:
        world.close()


def test_the_emulator_has_no_testing_trap(server_world: ServerWorld, unique: str) -> None:
    server_world.account(f"work-{unique}@example.com")
    assert _expiry(server_world) is None
