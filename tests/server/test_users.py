"""A household server: `calsync users` adds, lists, re-keys and removes people on the real
database while the real server runs; two people each connect their own Google account and
never see or touch the other's rows or calendars; removing one disconnects their accounts."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from httpx_sse import connect_sse
from sqlmodel import Session, select

from calsync_server.accounts.service import TOKEN_FILE, token_hash
from calsync_server.accounts.users import UserError, check_name
from calsync_server.cli import cli
from calsync_server.db.engine import create_db_engine, upgrade_database
from calsync_server.db.models import Account, User
from tests.server.conftest import ServerWorld
from tests.server.test_accounts import (
    calendars,
    google_account,
    refresh_grant,
    sign_in,
    starts,
)
from tests.support.waiting import wait_until
from tests.support.world import at, timed

SETTLE_S = 30.0
TOKEN = re.compile(r"API token \(shown only now; calsync keeps only its hash\): (\S+)")


@pytest.fixture
def world(server_world: ServerWorld) -> ServerWorld:
    server_world.start(push=False)
    return server_world


class Users:
    """`calsync users ...` through click's runner, on the world's database and home."""

    def __init__(self, world: ServerWorld) -> None:
        settings = world.server_settings
        self.flags = [
            "--home",
            str(settings.home),
            "--database-url",
            settings.database_url_resolved,
            "--google-api-url",
            settings.google_api_url,
        ]
        self.runner = CliRunner()

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return self.runner.invoke(cli, [*self.flags, "users", *args], input=input, env=env)

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    def add(self, name: str) -> str:
        output = self.ok("add", name)
        found = TOKEN.search(output)
        assert found, output
        assert output.count(found[1]) == 1  # printed once
        return found[1]


@pytest.fixture
def users(world: ServerWorld) -> Users:
    return Users(world)


def client(world: ServerWorld, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=world.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


class OpenStream:
    """`GET /api/v1/stream` read on a thread of its own: the events' names, until it ends."""

    def __init__(self, world: ServerWorld, token: str) -> None:
        self.events: list[str] = []
        self.ended = threading.Event()
        self.hello = threading.Event()
        threading.Thread(target=self._read, args=(world, token), daemon=True).start()
        wait_until(self.hello.is_set, timeout=20, what="the stream's hello")

    def _read(self, world: ServerWorld, token: str) -> None:
        try:
            with client(world, token) as api, connect_sse(api, "GET", "api/v1/stream") as source:
                for event in source.iter_sse():
                    self.events.append(event.event)
                    self.hello.set()
        finally:
            self.ended.set()


def listed(output: str) -> dict[str, int]:
    """`users list` as {name: accounts}."""
    rows = [line.split() for line in output.splitlines()[1:] if line.strip()]
    return {row[1]: int(row[2]) for row in rows}


def refused(world: ServerWorld, token: str) -> bool:
    return (
        httpx.get(
            world.url + "api/v1/accounts", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )


# -- two people on one server ----------------------------------------------------------------


def test_two_people_each_with_their_own_accounts_never_see_or_touch_the_other(
    world: ServerWorld, users: Users, unique: str
) -> None:
    alice_token = users.add(f"alice-{unique}")
    bruno_token = users.add(f"bruno-{unique}")
    assert alice_token != bruno_token
    with Session(world.db) as session:
        stored = {u.name: u.api_token_hash for u in session.exec(select(User))}
    assert stored[f"alice-{unique}"] == token_hash(alice_token)  # only the hash is kept

    a_mail, b_mail = f"alice-{unique}@example.com", f"bruno-{unique}@example.com"
    google_account(world, a_mail, "Alice team")
    google_account(world, b_mail, "Bruno side")
    with client(world, alice_token) as alice, client(world, bruno_token) as bruno:
        sign_in(alice, a_mail)
        sign_in(bruno, b_mail)
        a_cals, b_cals = calendars(alice, a_mail), calendars(bruno, b_mail)
        world.insert(a_cals["primary"], **timed("Alice's review", 9, 10))
        world.insert(b_cals["primary"], **timed("Bruno's dentist", 11, 12))
        world.enable(alice, a_cals["primary"], a_cals["Alice team"])
        world.enable(bruno, b_cals["primary"], b_cals["Bruno side"])
        wait_until(
            lambda: starts(world.blocks(a_cals["Alice team"])) == [at(9)],
            timeout=SETTLE_S,
            what="alice's block",
        )
        wait_until(
            lambda: starts(world.blocks(b_cals["Bruno side"])) == [at(11)],
            timeout=SETTLE_S,
            what="bruno's block",
        )
        wait_until(
            lambda: world.settled(alice) and world.settled(bruno),
            timeout=SETTLE_S,
            what="queues to drain",
        )

        # Rows: each sees only their own.
        assert [a["email"] for a in alice.get("/api/v1/accounts").json()] == [a_mail]
        assert [a["email"] for a in bruno.get("/api/v1/accounts").json()] == [b_mail]
        assert {c["account_email"] for c in alice.get("/api/v1/calendars").json()} == {a_mail}
        assert calendars(alice, b_mail) == {}
        assert calendars(bruno, a_mail) == {}
        a_blocks = alice.get("/api/v1/busy-blocks").json()["items"]
        assert len(a_blocks) == 1
        assert a_blocks[0]["target_calendar_id"] == a_cals["Alice team"].id
        b_logs = bruno.get("/api/v1/sync-logs", params={"calendar_id": a_cals["primary"].id})
        assert b_logs.status_code == 200
        assert b_logs.json()["items"] == []
        a_logs = alice.get("/api/v1/sync-logs", params={"calendar_id": a_cals["primary"].id})
        assert a_logs.json()["items"]

        # Touching: bruno cannot change alice's calendar, sync it or disconnect her account.
        a_account = alice.get("/api/v1/accounts").json()[0]["id"]
        patch = bruno.patch(f"/api/v1/calendars/{a_cals['Alice team'].id}", json={"role": "source"})
        assert patch.status_code == 404
        forged_sync = bruno.post("/api/v1/sync", json={"calendar_id": a_cals["primary"].id})
        assert forged_sync.status_code == 404
        assert bruno.delete(f"/api/v1/accounts/{a_account}").status_code == 404
        assert starts(world.blocks(a_cals["Alice team"])) == [at(9)]
        assert world.blocks(a_cals["primary"]) == []
        assert world.blocks(b_cals["primary"]) == []

        # The operator sees both, one account each.
        people = listed(users.ok("list"))
        assert people[f"alice-{unique}"] == 1
        assert people[f"bruno-{unique}"] == 1
        assert people["default"] == 0

        # Bruno's token is rotated: the old one stops working on the running server, the new
        # one sees his account, and his dashboard's open stream on the old one ends.
        stream = OpenStream(world, bruno_token)
        new_bruno = TOKEN.search(users.ok("rotate-token", f"bruno-{unique}"))
        assert new_bruno
        wait_until(lambda: refused(world, bruno_token), timeout=10, what="the old token refused")
        wait_until(lambda: stream.ended.is_set(), timeout=20, what="the old token's stream ended")
        assert stream.events[0] == "hello"
        assert stream.events[-1] == "closed"
        with client(world, new_bruno[1]) as again:
            assert [a["email"] for a in again.get("/api/v1/accounts").json()] == [b_mail]
        assert not refused(world, alice_token)

        # Bruno leaves: his account is disconnected (blocks gone from his calendars, his login
        # revoked at Google), his rows and token go; alice keeps everything.
        with Session(world.db) as session:
            sealed = session.exec(select(Account).where(Account.email == b_mail)).one()
            assert sealed.credentials_encrypted is not None
            b_refresh = world.vault.open(sealed.credentials_encrypted).refresh_token
        assert b_refresh
        declined = users.run("remove", f"bruno-{unique}", input="n\n")
        assert declined.exit_code == 1
        assert f"bruno-{unique}" in listed(users.ok("list"))
        removed = users.ok("remove", f"bruno-{unique}", input="y\n")
        assert f"disconnected {b_mail}: 1 busy blocks removed" in removed
        assert f"removed user bruno-{unique}" in removed
        assert world.blocks(b_cals["Bruno side"]) == []
        assert refresh_grant(world, b_refresh).status_code == 400
        wait_until(lambda: refused(world, new_bruno[1]), timeout=10, what="bruno's token refused")
        with Session(world.db) as session:
            assert session.exec(select(Account).where(Account.email == b_mail)).first() is None
        assert f"bruno-{unique}" not in listed(users.ok("list"))
        assert [a["email"] for a in alice.get("/api/v1/accounts").json()] == [a_mail]
        assert alice.get("/api/v1/accounts").json()[0]["state"] == "active"
        assert starts(world.blocks(a_cals["Alice team"])) == [at(9)]


# -- bad input -------------------------------------------------------------------------------


def test_bad_input_gives_a_clear_error_and_exit_code(users: Users, unique: str) -> None:
    users.add(f"carol-{unique}")
    cases = [
        (("add", f"carol-{unique}"), "already exists"),
        (("add", f"  carol-{unique} "), "already exists"),
        (("add", ""), "cannot be empty"),
        (("add", "   "), "cannot be empty"),
        (("add", "1234"), "cannot be only digits"),
        (("add", "x" * 101), "at most 100 characters"),
        (("add", "tab\there"), "control characters"),
        (("remove", f"nobody-{unique}", "--yes"), f"no user 'nobody-{unique}'"),
        (("remove", "99999", "--yes"), "no user '99999'"),
        (("remove", "", "--yes"), "name a user"),
        (("rotate-token", f"nobody-{unique}"), f"no user 'nobody-{unique}'"),
        (("remove", "default", "--yes"), "the default user holds the server's own token"),
    ]
    for args, message in cases:
        result = users.run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    missing = users.run("add")
    assert missing.exit_code == 2
    assert "Missing argument 'NAME'" in missing.output
    assert listed(users.ok("list")).keys() == {"default", f"carol-{unique}"}


def test_a_user_is_found_by_id_too_and_names_are_trimmed(users: Users, unique: str) -> None:
    output = users.ok("add", f"  dora-{unique}  ")
    found = re.search(rf"added user dora-{unique} \(id (\d+)\)", output)
    assert found, output
    rotated = users.ok("rotate-token", found[1])
    assert f"new API token for dora-{unique} (id {found[1]})" in rotated
    assert f"removed user dora-{unique}" in users.ok("remove", found[1], "--yes")


def test_rotating_the_default_users_token_rewrites_the_token_file(
    world: ServerWorld, users: Users
) -> None:
    home = world.server_settings.home
    before = (home / TOKEN_FILE).read_text().strip()
    found = TOKEN.search(users.ok("rotate-token", "default"))
    assert found
    assert (home / TOKEN_FILE).read_text().strip() == found[1]
    assert (home / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    wait_until(lambda: refused(world, before), timeout=10, what="the old default token refused")
    with client(world, found[1]) as default:
        assert default.get("/api/v1/accounts").status_code == 200
    # A token set in the environment is the operator's to change, not calsync's.
    pinned = users.run("rotate-token", "default", env={"CALSYNC_API_TOKEN": found[1]})
    assert pinned.exit_code == 1
    assert "CALSYNC_API_TOKEN" in pinned.output


def test_names_are_checked() -> None:
    assert check_name("  Ada Lovelace ") == "Ada Lovelace"
    assert check_name("ada2") == "ada2"
    for bad in ("", " ", "7", "a\nb", "z" * 101):
        with pytest.raises(UserError):
            check_name(bad)


# -- the dashboard, for anyone --------------------------------------------------------------


async def test_the_dashboard_shows_each_person_their_own_accounts(
    world: ServerWorld, users: Users, unique: str
) -> None:
    from calsync_tui.app import CalsyncApp
    from calsync_tui.client import CalsyncApi
    from calsync_tui.screens.overview import OverviewScreen
    from tests.tui.conftest import SIZE, live, until

    tokens = {name: users.add(f"{name}-{unique}") for name in ("erin", "finn")}
    for name, token in tokens.items():
        google_account(world, f"{name}-{unique}@example.com")
        with client(world, token) as api:
            sign_in(api, f"{name}-{unique}@example.com")
    for name, token in tokens.items():
        app = CalsyncApp(CalsyncApi(world.url, token))
        async with app.run_test(size=SIZE) as pilot:
            await live(pilot)
            screen = app.screen
            assert isinstance(screen, OverviewScreen)
            await until(pilot, lambda s=screen: s.data is not None, what="the overview")
            assert screen.data is not None
            assert [a.email for a in screen.data.accounts] == [f"{name}-{unique}@example.com"]


# -- existing databases ---------------------------------------------------------------------


@pytest.fixture
def old_database(database_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.mark.empty_database
def test_users_of_one_name_in_an_older_database_carry_over_renamed(
    old_database: sa.Engine, tmp_path: Path
) -> None:
    upgrade_database(old_database, "0006")
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with old_database.begin() as connection:
        for token in ("one", "two", "three"):
            connection.execute(
                sa.text(
                    'INSERT INTO "user" (name, api_token_hash, created_at) VALUES (:n, :h, :c)'
                ),
                {"n": "ada", "h": token_hash(token), "c": now},
            )
    upgrade_database(old_database)
    with Session(old_database) as session:
        rows = sorted((u.id or 0, u.name, u.api_token_hash) for u in session.exec(select(User)))
    assert [name for _, name, _ in rows] == ["ada", f"ada-{rows[1][0]}", f"ada-{rows[2][0]}"]
    assert [h for _, _, h in rows] == [token_hash(t) for t in ("one", "two", "three")]
    with Session(old_database) as session:
        session.add(User(name="ada", api_token_hash=token_hash("four"), created_at=now))
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()
