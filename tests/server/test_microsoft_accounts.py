"""Microsoft accounts end to end through `calsync serve`'s API: MSAL's auth code flow with PKCE
against the Graph emulator's identity endpoints over TLS (the emulator consents for the login
hint and redirects to the server's callback), the account and its calendars listed, a sync on
the sealed token cache; every bad callback refused with nothing stored; a refused refresh
marks the account needs_reauth and signing in again keeps its calendars and settings; a
disconnect stops the Graph subscriptions, removes blocks both ways and forgets the login;
`calsync accounts add microsoft` against a running server and with the server inside it."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import Session, col, select

from calsync_server.cli import cli
from calsync_server.db.models import Account, BusyBlock, OAuthFlow
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.runner import run_graph_emulator
from calsync_server.providers.credentials import MicrosoftTokenCache
from tests.server.conftest import ServerWorld
from tests.support.drivers.base import PersonEvent
from tests.support.drivers.connect import blocks
from tests.support.drivers.microsoft import CLIENT_ID, GraphEndpoints, MicrosoftDriver
from tests.support.waiting import wait_until
from tests.support.world import Cal, at, timed

SETTLE_S = 30.0
SCOPES = {"Calendars.ReadWrite", "User.Read", "openid", "profile", "offline_access"}


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphEndpoints]:
    config = GraphEmulatorConfig(push_delay_s=0.01, push_retry_base_s=0.05)
    with run_graph_emulator(config) as running:
        yield GraphEndpoints(running.url, running.tls_url, str(running.ca_path))


def graph_settings(graph: GraphEndpoints, **extra: Any) -> dict[str, Any]:
    """A deployment's settings for Microsoft: the Entra app's id, Graph and the login
    authority (the emulator's, with its CA)."""
    return {
        "microsoft_client_id": CLIENT_ID,
        "microsoft_graph_url": f"{graph.url}v1.0",
        "microsoft_login_url": graph.tls_url,
        "microsoft_ca_file": graph.ca_path,
        **extra,
    }


@pytest.fixture
def world(
    emulator: RunningEmulator, graph: GraphEndpoints, database_url: str, tmp_path: Path
) -> Iterator[ServerWorld]:
    built = ServerWorld(
        emulator,
        database_url,
        tmp_path / "home",
        **graph_settings(graph, poll_interval_seconds=3600.0),
    )
    yield built
    built.close()


@pytest.fixture
def driver(graph: GraphEndpoints) -> Iterator[MicrosoftDriver]:
    """A mailbox of the emulator, its person's hands (the person is not calsync)."""
    made = MicrosoftDriver(graph)
    yield made
    made.admin.delete("/emulator/faults")
    made.close()


# -- the browser and the API --------------------------------------------------------------------


def start(api: httpx.Client, email: str | None = None) -> dict[str, Any]:
    answer = api.post(
        "/api/v1/accounts/microsoft/authorize", json={"login_hint": email} if email else {}
    )
    assert answer.status_code == 200, answer.text
    started: dict[str, Any] = answer.json()
    return started


def consent(graph: GraphEndpoints, auth_url: str) -> str:
    """The browser at Microsoft's sign-in (the emulator's, over TLS): it consents for the login
    hint and redirects; the URL it redirects to (the server's callback with code and state)."""
    tls = ssl.create_default_context(cafile=graph.ca_path)
    answer = httpx.get(auth_url, verify=tls, timeout=30)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def sign_in(api: httpx.Client, graph: GraphEndpoints, email: str) -> httpx.Response:
    """The whole sign-in as a person does it: start, consent, the browser back at calsync."""
    page = httpx.get(consent(graph, start(api, email)["auth_url"]), timeout=30)
    assert page.status_code == 200, page.text
    return page


def accounts(api: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = api.get("/api/v1/accounts")
    assert answer.status_code == 200, answer.text
    return {a["email"]: a for a in answer.json()}


def calendars(api: httpx.Client, email: str) -> dict[str, Cal]:
    """The account's calendars by their provider id."""
    answer = api.get("/api/v1/calendars")
    assert answer.status_code == 200, answer.text
    return {
        row["provider_calendar_id"]: Cal(row["id"], row["provider_calendar_id"], email)
        for row in answer.json()
        if row["account_email"] == email
    }


def calendar_rows(api: httpx.Client, email: str) -> dict[str, dict[str, Any]]:
    answer = api.get("/api/v1/calendars")
    assert answer.status_code == 200, answer.text
    return {r["provider_calendar_id"]: r for r in answer.json() if r["account_email"] == email}


def stored(world: ServerWorld, email: str) -> MicrosoftTokenCache:
    with Session(world.db) as session:
        account = session.exec(select(Account).where(Account.email == email)).one()
    assert account.credentials_encrypted is not None
    login = world.vault.open(account.credentials_encrypted)
    assert isinstance(login, MicrosoftTokenCache)
    return login


def pending_flows(world: ServerWorld) -> int:
    with Session(world.db) as session:
        return len(session.exec(select(OAuthFlow)).all())


def instant(hours: float) -> datetime:
    return datetime.fromisoformat(at(hours).replace("Z", "+00:00"))


def event(title: str, start_h: float, end_h: float) -> PersonEvent:
    return PersonEvent(title, instant(start_h), instant(end_h))


def busy(title: str, start_h: float, end_h: float) -> tuple[str, datetime, datetime]:
    return (title, instant(start_h), instant(end_h))


def database_bytes(world: ServerWorld) -> bytes:
    """Everything the database holds for accounts, as bytes (the SQLite files whole)."""
    url = sa.make_url(world.settings.database_url_resolved)
    if url.get_backend_name() == "sqlite":
        assert url.database
        path = Path(url.database)
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    with world.db.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM account")).all()
    return repr(rows).encode()


def wait_for_blocks(
    driver: MicrosoftDriver, cal: Cal, want: list[tuple[str, datetime, datetime]], what: str
) -> None:
    """Until the calendar's blocks, as Graph holds them, are `want`; a timeout says what was
    there instead."""
    try:
        wait_until(lambda: blocks(driver, cal) == want, timeout=SETTLE_S, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the blocks: {blocks(driver, cal)}") from None


def sync_now(api: httpx.Client) -> None:
    answer = api.post("/api/v1/sync", json={})
    assert answer.status_code == 202, answer.text


# -- sign-in --------------------------------------------------------------------------------------


def test_a_microsoft_account_signs_in_is_listed_with_its_calendars_and_syncs(
    world: ServerWorld, driver: MicrosoftDriver, graph: GraphEndpoints
) -> None:
    world.start(push=False)
    team = driver.new_calendar("Team")
    driver.add(driver.default_calendar, event("Board meeting", 9, 10))
    with world.api() as api:
        started = start(api, driver.email)
        # The embedded address is written with localhost: Entra matches a registered
        # http://localhost redirect on any port.
        port = urlsplit(world.url).port
        assert started["redirect_uri"] == f"http://localhost:{port}/oauth/microsoft/callback"
        link = urlsplit(started["auth_url"])
        assert started["auth_url"].startswith(f"{graph.tls_url}common/oauth2/v2.0/authorize?")
        query = parse_qs(link.query)
        assert query["client_id"] == [CLIENT_ID]
        assert query["redirect_uri"] == [started["redirect_uri"]]
        assert query["state"] == [started["state"]]
        assert query["code_challenge_method"] == ["S256"]
        assert set(query["scope"][0].split()) == SCOPES
        assert query["login_hint"] == [driver.email]
        assert pending_flows(world) == 1

        callback = consent(graph, started["auth_url"])
        assert callback.startswith(started["redirect_uri"] + "?")
        page = httpx.get(callback, timeout=30)
        assert page.status_code == 200, page.text
        assert f"{driver.email} is connected to calsync with 2 calendars" in page.text
        assert pending_flows(world) == 0  # used once

        (listed,) = accounts(api).values()
        assert (listed["email"], listed["provider"], listed["state"]) == (
            driver.email,
            "microsoft",
            "active",
        )
        assert listed["calendars"] == 2
        assert listed["token_expires_at"] is not None
        rows = calendar_rows(api, driver.email)
        assert set(rows) == {driver.default_calendar, team}
        assert rows[team]["name"] == "Team"
        assert not any(r["sync_enabled"] for r in rows.values())  # imported with sync off

        # MSAL's cache, sealed: the app it was made for, and no token readable at rest.
        login = stored(world, driver.email)
        assert login.client_id == CLIENT_ID
        assert login.home_account_id.count(".") == 1  # MSAL's "<oid>.<tenant>"
        dump = database_bytes(world)
        assert driver.email.encode() in dump  # the right place: the account is in it
        assert b"RefreshToken" not in dump
        assert login.cache.encode() not in dump

        # A sync on the sealed cache: the default calendar's event blocks Team.
        cals = calendars(api, driver.email)
        world.enable(api, cals[driver.default_calendar], cals[team])
        wait_for_blocks(driver, cals[team], [busy("Busy", 9, 10)], "the block in Team")
        wait_until(lambda: world.settled(api), timeout=SETTLE_S, what="the queue to drain")
        assert blocks(driver, cals[driver.default_calendar]) == []
        logs = world.logs(api, cals[team])
        assert logs
        assert all(log["status"] == "success" for log in logs)


def test_bad_forged_reused_expired_or_refused_callbacks_store_nothing(
    world: ServerWorld, driver: MicrosoftDriver, graph: GraphEndpoints, unique: str
) -> None:
    world.start(push=False)
    with world.api() as api:
        started = start(api, driver.email)
        callback = consent(graph, started["auth_url"])
        base, code = callback.split("?")[0], parse_qs(urlsplit(callback).query)["code"][0]

        def refused(params: dict[str, str], status: int, says: str) -> None:
            answer = httpx.get(base, params=params, timeout=30)
            assert answer.status_code == status, answer.text
            assert "text/html" in answer.headers["content-type"]
            assert answer.headers["cache-control"] == "no-store"
            assert says in answer.text, answer.text
            assert accounts(api) == {}

        refused({"code": code}, 400, "not valid")  # no state
        refused({"state": "forged-" + unique, "code": code}, 400, "unknown or was already used")
        refused({"state": "s" * 5000, "code": code}, 400, "not valid")
        refused({"state": started["state"], **{f"p{i}": "x" for i in range(20)}}, 400, "not valid")
        assert pending_flows(world) == 1  # none of these touched the real one

        # The real reply connects, once; replayed it is refused.
        first = httpx.get(callback, timeout=30)
        assert first.status_code == 200, first.text
        assert list(accounts(api)) == [driver.email]
        api.delete(f"/api/v1/accounts/{accounts(api)[driver.email]['id']}").raise_for_status()
        replayed = httpx.get(callback, timeout=30)
        assert replayed.status_code == 400
        assert "already used" in replayed.text

        # Expired: its state no longer works, even once.
        late = start(api, driver.email)
        with Session(world.db) as session:
            for flow in session.exec(select(OAuthFlow)):
                flow.expires_at = flow.created_at
                session.add(flow)
            session.commit()
        refused(
            {
                "state": late["state"],
                "code": parse_qs(urlsplit(consent(graph, late["auth_url"])).query)["code"][0],
            },
            400,
            "expired",
        )

        # Microsoft's refusal (the person said no) uses the state up; its words are shown.
        no = start(api, driver.email)
        reply = {
            "state": no["state"],
            "error": "access_denied",
            "error_description": "AADSTS65004: declined",
        }
        refused(reply, 400, "Microsoft said &#x27;access_denied&#x27; (AADSTS65004: declined)")
        refused({"state": no["state"], "code": code}, 400, "already used")

        # A state with no code, a code Microsoft never issued: refused by its token endpoint.
        refused({"state": start(api, driver.email)["state"]}, 400, "Microsoft sent no sign-in code")
        made_up = start(api, driver.email)
        refused(
            {"state": made_up["state"], "code": "M.made-up"},
            400,
            "Microsoft refused the sign-in code",
        )

        # A Google sign-in's state brought to Microsoft's callback is refused and used up.
        google = api.post("/api/v1/accounts/google/authorize", json={})
        assert google.status_code == 200, google.text
        refused({"state": google.json()["state"], "code": code}, 400, "unknown or was already used")
        google_back = httpx.get(
            f"{world.url}oauth/google/callback",
            params={"state": google.json()["state"], "code": "4/x"},
        )
        assert google_back.status_code == 400
        assert "already used" in google_back.text

        # An unknown provider's callback; hostile callers of the API side.
        assert (
            httpx.get(f"{world.url}oauth/yahoo/callback", params={"state": "x"}).status_code == 404
        )
        anonymous = httpx.post(f"{world.url}api/v1/accounts/microsoft/authorize", json={})
        assert anonymous.status_code == 401
        too_long = api.post("/api/v1/accounts/microsoft/authorize", json={"login_hint": "x" * 400})
        assert too_long.status_code == 400
        assert api.post("/api/v1/accounts/microsoft/authorize", json={"nope": 1}).status_code == 400
        assert accounts(api) == {}
        with Session(world.db) as session:
            assert session.exec(select(Account)).all() == []


def test_without_an_entra_app_the_sign_in_says_what_to_set(
    server_world: ServerWorld, graph: GraphEndpoints
) -> None:
    world = server_world  # the Graph emulator reachable, but no Entra app id configured
    world.server_settings = msgspec.structs.replace(
        world.server_settings, **graph_settings(graph, microsoft_client_id=None)
    )
    world.start(push=False)
    with world.api() as api:
        answer = api.post("/api/v1/accounts/microsoft/authorize", json={})
        assert answer.status_code == 409, answer.text
        assert "no Microsoft app is configured" in answer.json()["error"]
        assert "CALSYNC_MICROSOFT_CLIENT_ID" in answer.json()["error"]
        assert pending_flows(world) == 0


# -- the login over time: refused, restored ------------------------------------------------------


def test_a_refused_refresh_needs_reauth_and_signing_in_again_keeps_calendars_and_settings(
    world: ServerWorld, driver: MicrosoftDriver, graph: GraphEndpoints
) -> None:
    world.start(push=False)
    team = driver.new_calendar("Team")
    default = driver.default_calendar
    driver.add(default, event("Standup", 9, 10))
    with world.api() as api:
        assert "is connected" in sign_in(api, graph, driver.email).text
        account_id = accounts(api)[driver.email]["id"]
        cals = calendars(api, driver.email)
        world.enable(api, cals[default], busy_title="title")
        world.enable(api, cals[team])
        wait_for_blocks(driver, cals[team], [busy("Busy - Standup", 9, 10)], "the first block")
        wait_until(lambda: world.settled(api), timeout=SETTLE_S, what="first syncs")
        first_login = stored(world, driver.email)

        # The person changes their password: every token of the login is refused.
        driver.add(default, event("Lunch", 12, 13))
        driver.refuse_login()
        sync_now(api)
        wait_until(
            lambda: accounts(api)[driver.email]["state"] == "needs_reauth",
            timeout=SETTLE_S,
            what="the account needing sign-in",
        )
        wait_until(lambda: world.settled(api), timeout=SETTLE_S, what="the queue to drain")
        # No block is deleted because a login was refused.
        with Session(world.db) as session:
            kept = session.exec(
                select(BusyBlock).where(BusyBlock.target_calendar_id == cals[team].id)
            ).all()
        assert len(kept) == 1

        again = sign_in(api, graph, driver.email)
        assert f"{driver.email} is reconnected" in again.text
        assert accounts(api)[driver.email]["id"] == account_id
        assert accounts(api)[driver.email]["state"] == "active"
        assert calendars(api, driver.email) == cals
        rows = calendar_rows(api, driver.email)
        assert rows[default]["sync_enabled"]
        assert rows[team]["sync_enabled"]
        assert rows[default]["busy_title"] == "title"
        assert stored(world, driver.email).cache != first_login.cache

        # It picks up where it stopped: what happened while it was signed out arrives.
        driver.sign_in_again()
        wait_for_blocks(
            driver,
            cals[team],
            [busy("Busy - Standup", 9, 10), busy("Busy - Lunch", 12, 13)],
            "the block made while signed out",
        )


# -- disconnect -----------------------------------------------------------------------------------


def test_disconnect_deletes_the_subscriptions_at_graph_removes_blocks_both_ways_and_forgets_it(
    world: ServerWorld, driver: MicrosoftDriver, graph: GraphEndpoints, unique: str
) -> None:
    world.start(push=True)  # its own URL is public: Graph subscriptions are made
    work = world.account(f"work-{unique}@example.com")["primary"]
    world.insert(work, **timed("Board meeting", 9, 10))
    team = driver.new_calendar("Team")
    default = driver.default_calendar
    driver.add(default, event("Lunch", 12, 13))
    admin = httpx.Client(base_url=graph.url, timeout=15)

    def subscriptions() -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = admin.get("/emulator/subscriptions").json()
        return [s for s in listed if s["notification_url"].startswith(world.url)]

    with world.api() as api, admin:
        sign_in(api, graph, driver.email)
        cals = calendars(api, driver.email)
        world.enable(api, work, cals[default], cals[team])
        wait_for_blocks(
            driver, cals[team], [busy("Busy", 9, 10), busy("Busy", 12, 13)], "both in Team"
        )
        wait_until(
            lambda: [b["start"]["dateTime"] for b in world.blocks(work)] == [at(12)],
            timeout=SETTLE_S,
            what="Lunch's block in Google",
        )
        wait_until(
            lambda: {s["calendar_id"] for s in subscriptions()} == {default, team},
            timeout=SETTLE_S,
            what="a Graph subscription per synced Microsoft calendar",
        )
        wait_until(lambda: world.settled(api), timeout=SETTLE_S, what="first syncs")
        account_id = accounts(api)[driver.email]["id"]

        answer = api.delete(f"/api/v1/accounts/{account_id}")
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["email"] == driver.email
        assert report["channels_stopped"] == 2
        # How many the release counted depends on whether a sync of a calendar turned off
        # got there first (it removes them too): the outcome below is what matters.
        assert report["notes"] == []

        assert subscriptions() == []  # deleted at Graph
        assert world.blocks(work) == []  # Lunch's block gone from Google
        assert driver.marks(default) == {}  # Google's block gone from Microsoft
        assert driver.marks(team) == {}
        assert [e["title"] for e in driver.events(default)] == ["Lunch"]  # the person's own
        assert list(accounts(api)) == [f"work-{unique}@example.com"]
        with Session(world.db) as session:
            assert session.exec(select(Account).where(Account.email == driver.email)).all() == []
            gone = session.exec(
                select(BusyBlock).where(
                    col(BusyBlock.target_calendar_id).in_([c.id for c in cals.values()])
                )
            ).all()
            assert gone == []
        assert api.delete(f"/api/v1/accounts/{account_id}").status_code == 404


# -- calsync accounts add microsoft ---------------------------------------------------------------


@contextmanager
def adding(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Popen[str]]]:
    """`calsync ... accounts add microsoft --no-browser ...` in its own process; the link it
    prints is handed over while it waits for the sign-in."""
    process = Popen(
        [sys.executable, "-m", "calsync_server.cli", *args],
        stdout=PIPE,
        stderr=STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
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


def finished(process: Popen[str]) -> str:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    return output


def test_the_cli_adds_and_reauthorises_a_microsoft_account_through_a_running_server(
    world: ServerWorld, driver: MicrosoftDriver, graph: GraphEndpoints, tmp_path: Path
) -> None:
    world.start(push=False)
    team = driver.new_calendar("Team")
    add = ["--home", str(tmp_path / "cli-home"), "accounts", "add", "microsoft", "--no-browser"]
    add += ["--login-hint", driver.email, "--server", world.url, "--token", "token-ada"]
    with world.api() as api:
        with adding(*add, "--wait", "60") as (link, process):
            assert parse_qs(urlsplit(link).query)["login_hint"] == [driver.email]
            assert "connected" in httpx.get(consent(graph, link), timeout=30).text
            output = finished(process)
        assert f"connected {driver.email}" in output
        assert "Team  (sync off)" in output
        (listed,) = accounts(api).values()
        assert set(calendars(api, driver.email)) == {driver.default_calendar, team}

        # Signing in again while the account is active: the command sees the fresh login.
        with adding(*add, "--wait", "60") as (link, process):
            assert "reconnected" in httpx.get(consent(graph, link), timeout=30).text
            output = finished(process)
        assert f"connected {driver.email} (account {listed['id']})" in output
        assert accounts(api)[driver.email]["authorized_at"] > listed["authorized_at"]


def test_the_cli_signs_in_with_the_server_inside_the_command_on_localhost(
    graph: GraphEndpoints, driver: MicrosoftDriver, database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    settings = ["--home", str(home), "--database-url", database_url]
    env = {f"CALSYNC_{k.upper()}": str(v) for k, v in graph_settings(graph).items()}
    add = [*settings, "accounts", "add", "microsoft", "--no-browser", "--login-hint", driver.email]
    with adding(*add, env=env) as (link, process):
        # The embedded server's callback, written as the Entra app registers it (any port).
        redirect = urlsplit(parse_qs(urlsplit(link).query)["redirect_uri"][0])
        assert (redirect.scheme, redirect.hostname) == ("http", "localhost")
        assert redirect.path == "/oauth/microsoft/callback"
        page = httpx.get(consent(graph, link), timeout=30)
        assert page.status_code == 200, page.text
        output = finished(process)
    assert f"connected {driver.email}" in output
    listed = run_cli(*settings, "accounts", "list", env=env)
    line = next(row for row in listed.splitlines() if driver.email in row)
    assert line.split()[2:] == ["active", "1"]


def test_the_cli_says_what_to_set_without_an_entra_app(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    refused = CliRunner().invoke(
        cli, [*home, "accounts", "add", "microsoft", "--no-browser", "--wait", "1"], env={}
    )
    assert refused.exit_code == 1, refused.output
    assert "409" in refused.output
    assert "no Microsoft app is configured" in refused.output
    assert "CALSYNC_MICROSOFT_CLIENT_ID" in refused.output


def run_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
