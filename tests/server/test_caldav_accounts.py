"""CalDAV accounts through the API and `calsync accounts add caldav`, against a real Radicale:
a login is checked before anything is stored, a wrong password and an unreachable server are
said as such, the password is never answered back, and the scheduler polls the calendars (no
push for CalDAV) so a change in Radicale reaches Google within the poll interval."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

from calsync_server.cli import cli
from calsync_server.db.models import Account
from calsync_server.providers.credentials import CalDAVPassword
from tests.server.conftest import ServerWorld
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.caldav import CalDAVDriver, CalDAVServer, caldav_server, free_port
from tests.support.waiting import wait_until
from tests.support.world import at, timed

ROUTE = "/api/v1/accounts/caldav"


def login(server: CalDAVServer, **changes: str) -> dict[str, str]:
    return {"url": server.url, "username": server.username, "password": server.password, **changes}


def instant(hours: float) -> datetime:
    return datetime.fromisoformat(at(hours).replace("Z", "+00:00"))


def accounts(api: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get("/api/v1/accounts").json()
    return found


def test_the_api_connects_a_caldav_account_after_checking_it(
    server_world: ServerWorld, radicale: CalDAVServer, caplog: pytest.LogCaptureFixture
) -> None:
    world = server_world
    driver = CalDAVDriver(radicale)
    driver.new_calendar("Personal")
    world.start(push=False)
    caplog.set_level(logging.DEBUG)
    with world.api() as api:
        answer = api.post(ROUTE, json=login(radicale))
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["email"] == radicale.username
        assert body["reauthorised"] is False
        assert "Personal" in body["calendars"]
        assert radicale.password not in answer.text
        (account,) = accounts(api)
        assert (account["provider"], account["state"]) == ("caldav", "active")
        calendars = api.get("/api/v1/calendars").json()
        assert {c["name"] for c in calendars} >= {"Personal"}
        assert not any(c["sync_enabled"] for c in calendars)  # imported with sync off

        # The same login again brings the account back: no second account.
        again = api.post(ROUTE, json=login(radicale))
        assert again.status_code == 201, again.text
        assert again.json()["reauthorised"] is True
        assert [a["id"] for a in accounts(api)] == [account["id"]]

        # Remove: the account and its calendars go.
        gone = api.delete(f"/api/v1/accounts/{account['id']}")
        assert gone.status_code == 200, gone.text
        assert accounts(api) == []
    assert radicale.password not in caplog.text


def test_the_sign_in_discovers_once_and_keeps_the_calendar_home_in_the_login(
    server_world: ServerWorld, radicale: CalDAVServer
) -> None:
    """Discovery (well-known, principal, calendar-home-set) happens once, at sign-in: the
    calendars are imported from the home it found, and the home, the principal and its
    addresses are sealed with the password, so syncs start from them."""
    world = server_world
    driver = CalDAVDriver(radicale)
    driver.new_calendar("Personal")
    world.start(push=False)
    radicale.proxy.state.log.clear()
    with world.api() as api:
        answer = api.post(ROUTE, json=login(radicale))
        assert answer.status_code == 201, answer.text
    asked = radicale.proxy.requests()
    assert asked.count(("PROPFIND", "/.well-known/caldav")) == 1
    with Session(world.db) as session:
        account = session.exec(select(Account)).one()
        assert account.credentials_encrypted is not None
        kept = world.vault.open(account.credentials_encrypted)
    assert isinstance(kept, CalDAVPassword)
    assert kept.password == radicale.password
    assert kept.calendar_home is not None
    assert unquote(kept.calendar_home) == driver.calendar_url(radicale.home_path)
    assert kept.principal is not None
    assert kept.addresses == (radicale.username,)


def test_one_user_name_on_two_servers_is_two_accounts(
    server_world: ServerWorld, radicale: CalDAVServer, tmp_path: Path
) -> None:
    """The same user name (an email) on two servers, as an Apple ID that is also a Nextcloud
    login: the second server's login is an account of its own, named with its host; neither
    replaces the other's login or calendars, and each one connected again is brought back."""
    world = server_world
    CalDAVDriver(radicale).new_calendar("Personal")
    (tmp_path / "second").mkdir()
    with caldav_server("radicale", tmp_path / "second") as second:
        CalDAVDriver(second).new_calendar("Family")
        assert second.username == radicale.username
        world.start(push=False)
        with world.api() as api:
            first = api.post(ROUTE, json=login(radicale))
            assert first.status_code == 201, first.text
            other = api.post(ROUTE, json=login(second))
            assert other.status_code == 201, other.text
            assert other.json()["reauthorised"] is False
            host = urlsplit(second.url).netloc
            assert other.json()["email"] == f"{second.username} ({host})"
            assert {c["name"] for c in api.get("/api/v1/calendars").json()} >= {
                "Personal",
                "Family",
            }
            for server, body in ((radicale, first.json()), (second, other.json())):
                again = api.post(ROUTE, json=login(server))
                assert again.status_code == 201, again.text
                assert (again.json()["email"], again.json()["reauthorised"]) == (
                    body["email"],
                    True,
                )
            assert len(accounts(api)) == 2
        with Session(world.db) as session:
            kept = {
                a.email: world.vault.open(a.credentials_encrypted)
                for a in session.exec(select(Account))
                if a.credentials_encrypted is not None
            }
        assert {k: v.url for k, v in kept.items() if isinstance(v, CalDAVPassword)} == {
            radicale.username: radicale.url,
            f"{second.username} ({host})": second.url,
        }


def test_a_wrong_password_or_an_unreachable_server_is_said_as_such_and_nothing_is_stored(
    server_world: ServerWorld, radicale: CalDAVServer, caplog: pytest.LogCaptureFixture
) -> None:
    world = server_world
    world.start(push=False)
    caplog.set_level(logging.DEBUG)
    with world.api() as api:
        wrong = api.post(ROUTE, json=login(radicale, password="not-the-password-42"))
        assert wrong.status_code == 401, wrong.text
        assert "refused the user name or password" in wrong.json()["error"]
        assert "not-the-password-42" not in wrong.text

        nowhere = f"http://127.0.0.1:{free_port()}/"
        unreachable = api.post(ROUTE, json=login(radicale, url=nowhere))
        assert unreachable.status_code == 400, unreachable.text
        assert f"cannot reach the CalDAV server at {nowhere}" in unreachable.json()["error"]

        plain = api.post(ROUTE, json=login(radicale, url="http://calendar.example.com/dav/"))
        assert plain.status_code == 400, plain.text
        assert "must use https://" in plain.json()["error"]

        assert accounts(api) == []
    assert "not-the-password-42" not in caplog.text
    assert radicale.password not in caplog.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "url"),
        ({"url": "https://caldav.example.com/", "username": "ada"}, "password"),
        ({"url": "ftp://caldav.example.com/", "username": "ada", "password": "pw"}, "url"),
        ({"url": "https://caldav.example.com/", "username": "", "password": "pw"}, "username"),
        ({"url": "https://caldav.example.com/", "username": "ada", "password": 7}, "password"),
        (
            {"url": "https://caldav.example.com/", "username": "ada", "password": "p" * 5000},
            "password",
        ),
        (
            {"url": "https://x.example/" + "a" * 3000, "username": "ada", "password": "pw"},
            "url",
        ),
        (  # a forged field (an account id, a user) is refused, not ignored
            {"url": "https://caldav.example.com/", "username": "a", "password": "pw", "user_id": 1},
            "user_id",
        ),
        ({"url": "https://exa mple.com/", "username": "ada", "password": "pw"}, "plain"),
    ],
)
def test_malformed_logins_are_refused_before_any_request(
    server_world: ServerWorld, body: dict[str, Any], says: str
) -> None:
    world = server_world
    world.start(push=False)
    with world.api() as api:
        answer = api.post(ROUTE, json=body)
        assert answer.status_code == 400, answer.text
        assert says in answer.json()["error"]
        assert "p" * 100 not in answer.text  # an oversized password is not echoed
        assert accounts(api) == []


def test_the_route_needs_the_token_and_a_small_json_body(
    server_world: ServerWorld, radicale: CalDAVServer
) -> None:
    world = server_world
    world.start(push=False)
    with httpx.Client(base_url=world.url, timeout=30) as anonymous:
        assert anonymous.post(ROUTE, json=login(radicale)).status_code == 401
    with world.api() as api:
        broken = api.post(ROUTE, content=b'{"url": ', headers={"Content-Type": "application/json"})
        assert broken.status_code == 400
        huge = api.post(ROUTE, json=login(radicale, password="x" * (2 * 1024 * 1024)))
        assert huge.status_code == 413
        assert accounts(api) == []


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args), input=input, catch_exceptions=False)


def test_the_command_line_takes_the_password_from_a_file_a_prompt_or_the_environment(
    server_world: ServerWorld, radicale: CalDAVServer, tmp_path: Path
) -> None:
    world = server_world
    world.start(push=False)
    world.user("ada")
    CalDAVDriver(radicale).new_calendar("Work")
    client = ["--server", world.url, "--token", "token-ada"]
    add = ["accounts", "add", "caldav", "--url", radicale.url, "--username", radicale.username]

    secret = tmp_path / "password"
    secret.write_text(radicale.password + "\n")
    from_file = run(*add, "--password-file", str(secret), *client)
    assert from_file.exit_code == 0, from_file.output
    assert f"connected {radicale.username}" in from_file.output
    assert "Work" in from_file.output
    assert radicale.password not in from_file.output

    prompted = run(
        *add, *client, input=radicale.password + "\n", env={"CALSYNC_CALDAV_PASSWORD": ""}
    )
    assert prompted.exit_code == 0, prompted.output
    assert "Password for" in prompted.output
    assert radicale.password not in prompted.output  # asked without echo
    assert "renewed" in prompted.output

    from_env = run(*add, *client, env={"CALSYNC_CALDAV_PASSWORD": radicale.password})
    assert from_env.exit_code == 0, from_env.output

    listed = run("accounts", "list", *client)
    assert radicale.username in listed.output
    assert "active" in listed.output

    wrong = run(*add, *client, env={"CALSYNC_CALDAV_PASSWORD": "wrong-password-1"})
    assert wrong.exit_code != 0
    assert "refused the user name or password" in wrong.output
    assert "wrong-password-1" not in wrong.output

    nowhere = f"http://127.0.0.1:{free_port()}/"
    unreachable = run(
        "accounts",
        "add",
        "caldav",
        "--url",
        nowhere,
        "--username",
        "ada",
        *client,
        env={"CALSYNC_CALDAV_PASSWORD": "pw"},
    )
    assert unreachable.exit_code != 0
    assert "cannot reach the CalDAV server" in unreachable.output

    icloud = run(
        "accounts", "add", "caldav", "--icloud", "--url", nowhere, "--username", "a", *client
    )
    assert icloud.exit_code != 0
    assert "not both" in icloud.output

    (account,) = accounts(world.api())
    removed = run("accounts", "remove", str(account["id"]), "--yes", *client)
    assert removed.exit_code == 0, removed.output
    assert accounts(world.api()) == []


def test_the_icloud_preset_explains_the_app_specific_password(
    server_world: ServerWorld, tmp_path: Path
) -> None:
    world = server_world
    world.start(push=False)
    world.user("ada")
    client = ["--server", world.url, "--token", "token-ada"]
    secret = tmp_path / "password"
    secret.write_text("abcd-efgh-ijkl-mnop\n")
    # iCloud is not reachable from the tests: the preset's words are what is checked here.
    result = run(
        "accounts",
        "add",
        "icloud",
        "--username",
        "ada@icloud.com",
        "--password-file",
        str(secret),
        *client,
    )
    assert "app-specific password" in result.output
    assert "whole iCloud account" in result.output


def test_the_scheduler_polls_caldav_and_a_change_reaches_google_within_the_interval(
    polling_world: ServerWorld, radicale: CalDAVServer, unique: str
) -> None:
    world = polling_world
    driver = CalDAVDriver(radicale)
    personal = driver.new_calendar("Personal")
    google = world.account(f"work-{unique}@example.com")["primary"]
    world.start(push=False)
    with world.api() as api:
        answer = api.post(ROUTE, json=login(radicale))
        assert answer.status_code == 201, answer.text
        calendars = api.get("/api/v1/calendars").json()
        caldav_id = next(c["id"] for c in calendars if c["provider_calendar_id"] == personal)
        for calendar_id in (google.id, caldav_id):
            changed = api.patch(f"/api/v1/calendars/{calendar_id}", json={"sync_enabled": True})
            assert changed.status_code == 200, changed.text
        world.insert(google, **timed("Board meeting", 9, 10))
        wait_until(
            lambda: [e for e in driver.events(personal) if e["mark"]],
            timeout=20,
            what="Google's event as a block in Radicale",
        )

        # Both first syncs done (the CalDAV one may still be queued behind Google's), so only
        # the scheduler can bring what comes next.
        wait_until(lambda: world.settled(api), what="the first syncs")
        # Nobody announces a CalDAV change: the next poll (1 s) finds it.
        driver.add(personal, PersonEvent("Dentist", instant(14), instant(15)))
        wait_until(
            lambda: [b for b in world.blocks(google) if b["start"]["dateTime"] == at(14)],
            timeout=15,
            what="the CalDAV event as a block in Google within a few poll intervals",
        )
        # The scheduler brought it: a poll, or the calendar's first daily full reconcile, which
        # the scheduler may run first. Its log row is written as it ends, after its writes.
        wait_until(
            lambda: (
                {
                    item["kind"]
                    for item in api.get(
                        "/api/v1/sync-logs", params={"calendar_id": caldav_id, "limit": 100}
                    ).json()["items"]
                }
                & {"polling", "full"}
            ),
            timeout=15,
            what="the log of the sync the scheduler made",
        )

        # A password revoked later: needs_reauth at once, nothing deleted.
        driver.refuse_login()
        try:
            wait_until(
                lambda: accounts(api)[-1]["state"] == "needs_reauth",
                timeout=15,
                what="the CalDAV account marked needs_reauth",
            )
        finally:
            radicale.reset()
        assert [b for b in world.blocks(google) if b["start"]["dateTime"] == at(14)]
