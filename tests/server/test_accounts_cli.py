"""`calsync accounts` end to end: add (the link followed as a browser would), list, remove, both
against a running server and with the server started inside the command."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from click.testing import CliRunner, Result

from calsync_server.cli import cli
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.providers.google.signin import CLIENT_FILE
from tests.server.conftest import ServerWorld
from tests.server.test_accounts import accounts, calendars, google_account, refresh_grant, stored

ADD_TIMEOUT_S = 120


@contextmanager
def adding(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `calsync ... accounts add google --no-browser ...` and hand over the link it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "calsync_server.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("http"):
                yield line.strip(), process
                break
        else:
            raise AssertionError(f"no sign-in link was printed: {''.join(seen)}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=ADD_TIMEOUT_S)
    assert process.returncode == 0, output
    return output


def follow(link: str) -> None:
    """The browser's part: consent at the emulator, redirected to calsync's callback."""
    page = httpx.get(link, follow_redirects=True, timeout=30)
    assert page.status_code == 200, page.text
    assert "connected" in page.text


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_accounts_against_a_running_server(
    server_world: ServerWorld, tmp_path: Path, unique: str
) -> None:
    world = server_world
    world.start(push=False)
    email = f"cli-{unique}@example.com"
    google_account(world, email, "Team")
    client = ["--server", world.url, "--token", "token-ada"]
    home = ["--home", str(tmp_path / "cli-home")]
    with world.api("ada") as ada:
        add = [*home, "accounts", "add", "google", "--no-browser", "--login-hint", email]
        with adding(*add, *client, "--wait", "60") as (link, process):
            assert parse_qs(urlsplit(link).query)["login_hint"] == [email]
            follow(link)
            output = finish(process)
        assert f"connected {email}" in output
        assert "Team  (sync off)" in output
        cals = calendars(ada, email)
        assert set(cals) == {"primary", "Team"}
        account_id = accounts(ada)[email]["id"]

        listed = run(*home, "accounts", "list", *client)
        assert listed.exit_code == 0, listed.output
        assert email in listed.output
        assert "active" in listed.output

        # Asked to confirm, the user says no: nothing happens.
        declined = run(*home, "accounts", "remove", str(account_id), *client, input="n\n")
        assert declined.exit_code == 1
        assert list(accounts(ada)) == [email]

        refresh = stored(world, email).refresh_token
        assert refresh
        removed = run(*home, "accounts", "remove", str(account_id), *client, input="y\n")
        assert removed.exit_code == 0, removed.output
        assert f"disconnected {email}" in removed.output
        assert "token revoked" in removed.output
        assert accounts(ada) == {}
        assert refresh_grant(world, refresh).status_code == 400

        missing = run(*home, "accounts", "remove", str(account_id), "--yes", *client)
        assert missing.exit_code == 1
        assert f"no account {account_id}" in missing.output
        empty = run(*home, "accounts", "list", *client)
        assert "no accounts yet" in empty.output
        wrong_token = run(*home, "accounts", "list", "--server", world.url, "--token", "nope")
        assert wrong_token.exit_code == 1
        assert "401" in wrong_token.output


def test_accounts_with_the_server_inside_the_command(
    emulator: RunningEmulator, database_url: str, tmp_path: Path, unique: str
) -> None:
    home = tmp_path / "home"
    settings = ["--home", str(home), "--database-url", database_url]
    settings += ["--google-api-url", emulator.url]
    email = f"embedded-{unique}@example.com"
    answer = httpx.post(f"{emulator.url}emulator/accounts", json={"email": email})
    assert answer.status_code == 201, answer.text

    # The user's own OAuth client, downloaded from Google Cloud, is kept in CALSYNC_HOME.
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "1234-desktop.apps.googleusercontent.com",
                    "client_secret": "GOCSPX-test",
                    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                    "token_uri": "https://oauth2.googleapis.com/token",
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    add = [*settings, "accounts", "add", "google", "--no-browser", "--login-hint", email]
    with adding(*add, "--client-secrets", str(secrets)) as (link, process):
        # Against the emulator its endpoints are used, with the user's client id.
        assert link.startswith(f"{emulator.url}o/oauth2/auth?")
        query = parse_qs(urlsplit(link).query)
        assert query["client_id"] == ["1234-desktop.apps.googleusercontent.com"]
        assert query["code_challenge_method"] == ["S256"]
        assert query["access_type"] == ["offline"]
        follow(link)
        output = finish(process)
    assert f"connected {email}" in output
    kept = home / CLIENT_FILE
    assert json.loads(kept.read_text()) == json.loads(secrets.read_text())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    listed = run(*settings, "accounts", "list")
    assert listed.exit_code == 0, listed.output
    line = next(row for row in listed.output.splitlines() if email in row)
    account_id = line.split()[0]
    assert line.split()[2:] == ["active", "1"]

    removed = run(*settings, "accounts", "remove", account_id, "--yes")
    assert removed.exit_code == 0, removed.output
    assert "token revoked" in removed.output
    assert "no accounts yet" in run(*settings, "accounts", "list").output


def test_add_explains_what_is_missing(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home"), "--google-api-url", "https://www.googleapis.com/"]
    no_client = run(*home, "accounts", "add", "google", "--no-browser", "--wait", "1")
    assert no_client.exit_code == 1
    assert "no Google OAuth client is configured" in no_client.output

    bad = tmp_path / "client.json"
    bad.write_text('{"other": {}}')
    refused = run(*home, "accounts", "add", "google", "--client-secrets", str(bad))
    assert refused.exit_code == 1
    assert "Desktop app" in refused.output
    assert not (tmp_path / "home" / CLIENT_FILE).exists()

    bad.write_text('{"installed": {"client_id": "x", "client_secret": "y"}}')
    remote = run(
        *home, "accounts", "add", "google", "--client-secrets", str(bad), "--server", "http://x/"
    )
    assert remote.exit_code == 2
    assert "kept by the server" in remote.output
