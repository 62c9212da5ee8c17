"""The 7-day trap: with real Google, the API tells when a "Testing" app's login would end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from calsync_server.emulators.google.runner import RunningEmulator
from tests.server.conftest import ServerWorld


def _expiry(world: ServerWorld) -> object:
    world.start(push=False)
    with world.api() as api:
        (account,) = api.get("/api/v1/accounts").json()
    return account["testing_login_expires_at"]


def test_real_google_accounts_say_when_a_testing_app_login_ends(
    emulator: RunningEmulator, database_url: str, tmp_path: Path, unique: str
) -> None:
    # The account is connected through the emulator; the server believes it talks to Google
    # (nothing is synced, so it never calls out).
    world = ServerWorld(
        emulator, database_url, tmp_path / "home", google_api_url="https://www.googleapis.com/"
    )
    try:
        signed_in = datetime.now(UTC)
        world.account(f"work-{unique}@example.com")
        ends = datetime.fromisoformat(str(_expiry(world)).replace("Z", "+00:00"))
        assert timedelta(days=7) <= ends - signed_in < timedelta(days=7, minutes=1)
    finally:
        world.close()


def test_the_emulator_has_no_testing_trap(server_world: ServerWorld, unique: str) -> None:
    server_world.account(f"work-{unique}@example.com")
    assert _expiry(server_world) is None
