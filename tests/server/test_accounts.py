"""Accounts end to end: Google sign-in through the server (the emulator's consent, no browser),
several accounts and users, token refresh and re-authorisation, disconnect, tokens at rest."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from calsync_server.accounts.vault import KEY_FILE, StoredCredentials
from calsync_server.db.models import Account, OAuthFlow
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from calsync_server.providers.google.signin import CLIENT_FILE
from tests.server.conftest import ServerWorld
from tests.support.waiting import wait_until
from tests.support.world import Cal, at, timed

# Generous: syncs run in worker threads of a server that shares the machine with other tests.
SETTLE_S = 30.0

# -- helpers ----------------------------------------------------------------------------------


def google_account(world: ServerWorld, email: str, *others: str) -> None:
    """A Google account in the emulator only: calsync learns of it by signing in."""
    answer = world.admin.post(
        "/emulator/accounts",
        json={
            "email": email,
            "time_zone": "Europe/Berlin",
            "calendars": [{"summary": s} for s in others],
        },
    )
    assert answer.status_code == 201, answer.text
    world.tokens[email] = answer.json()


def start_sign_in(api: httpx.Client, email: str | None = None) -> dict[str, Any]:
    answer = api.post(
        "/api/v1/accounts/google/authorize", json={"login_hint": email} if email else {}
    )
    assert answer.status_code == 200, answer.text
    started: dict[str, Any] = answer.json()
    return started


def sign_in(api: httpx.Client, email: str) -> httpx.Response:
    """What the browser does: follow the consent URL; the emulator consents and redirects back
    to the server's callback, which finishes the sign-in."""
    started = start_sign_in(api, email)
    page = httpx.get(started["auth_url"], follow_redirects=True, timeout=30)
    assert page.status_code == 200, page.text
    assert "connected" in page.text
    return page


def calendars(api: httpx.Client, email: str) -> dict[str, Cal]:
    """The user's calendars of one account by name ("primary" for the account's own)."""
    answer = api.get("/api/v1/calendars")
    assert answer.status_code == 200, answer.text
    found: dict[str, Cal] = {}
    for row in answer.json():
        if row["account_email"] != email:
            continue
        name = "primary" if row["provider_calendar_id"] == email else row["name"]
        found[name] = Cal(row["id"], row["provider_calendar_id"], email)
    return found


def account_row(world: ServerWorld, email: str, user: str = "ada") -> Account:
    with Session(world.db) as session:
        account = session.exec(
            select(Account).where(Account.email == email, Account.user_id == world.user(user))
        ).one()
        session.expunge(account)
        return account


def stored(world: ServerWorld, email: str, user: str = "ada") -> StoredCredentials:
    sealed = account_row(world, email, user).credentials_encrypted
    assert sealed is not None
    return world.vault.open(sealed)


def accounts(api: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = api.get("/api/v1/accounts")
    assert answer.status_code == 200, answer.text
    return {a["email"]: a for a in answer.json()}


def refresh_grant(world: ServerWorld, refresh_token: str) -> httpx.Response:
    return world.admin.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "calsync-emulator",
        },
    )


def starts(blocks: list[dict[str, Any]]) -> list[str]:
    return sorted(b["start"]["dateTime"] for b in blocks)


def sync_now(api: httpx.Client) -> None:
    answer = api.post("/api/v1/sync", json={})
    assert answer.status_code == 202, answer.text


@pytest.fixture
def world(server_world: ServerWorld) -> ServerWorld:
    server_world.start(push=False)
    return server_world


# -- sign-in, several accounts and users ------------------------------------------------------


def test_two_accounts_for_ada_and_one_for_bob_sync_and_nothing_crosses_users(
    world: ServerWorld, unique: str
) -> None:
    work, home, bobs = (f"{n}-{unique}@example.com" for n in ("work", "home", "bob"))
    google_account(world, work, "Team")
    google_account(world, home)
    google_account(world, bobs, "Side")
    with world.api("ada") as ada, world.api("bob") as bob:
        sign_in(ada, work)
        sign_in(ada, home)
        sign_in(bob, bobs)

        assert sorted(accounts(ada)) == sorted([work, home])
        assert list(accounts(bob)) == [bobs]
        assert all(a["state"] == "active" for a in accounts(ada).values())
        ada_work, ada_home, bob_cals = (
            calendars(ada, work),
            calendars(ada, home),
            calendars(bob, bobs),
        )
        assert set(ada_work) == {"primary", "Team"}
        assert set(bob_cals) == {"primary", "Side"}
        assert calendars(ada, bobs) == {}
        assert calendars(bob, work) == {}
        # Imported with sync off (seed rule): nothing is written until the user chooses.
        assert not any(c["sync_enabled"] for c in ada.get("/api/v1/calendars").json())

        world.insert(ada_work["primary"], **timed("Board meeting", 9, 10))
        world.insert(ada_home["primary"], **timed("School run", 15, 16))
        world.insert(bob_cals["primary"], **timed("Bob's dentist", 11, 12))
        world.enable(ada, ada_work["primary"], ada_work["Team"], ada_home["primary"])
        world.enable(bob, bob_cals["primary"], bob_cals["Side"])

        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(ada_work["Team"])) == [at(9), at(15)],
            what="both of ada's events in Team",
        )
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(ada_home["primary"])) == [at(9)],
            what="home",
        )
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(bob_cals["Side"])) == [at(11)],
            what="bob's Side",
        )
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: world.settled(ada) and world.settled(bob),
            what="queues to drain",
        )
        assert starts(world.blocks(ada_work["primary"])) == [at(15)]
        # Nothing of bob's reaches ada and nothing of ada's reaches bob.
        assert world.blocks(bob_cals["primary"]) == []
        assert starts(world.blocks(bob_cals["Side"])) == [at(11)]
        # A user cannot touch another user's account.
        bob_account = accounts(bob)[bobs]["id"]
        assert ada.delete(f"/api/v1/accounts/{bob_account}").status_code == 404
        assert list(accounts(bob)) == [bobs]


def test_a_forged_replayed_expired_or_refused_state_is_refused(
    world: ServerWorld, unique: str
) -> None:
    email = f"solo-{unique}@example.com"
    google_account(world, email)
    with world.api("ada") as ada:
        # The consent answer (a redirect carrying the code) without the server finishing it.
        started = start_sign_in(ada, email)
        consent = httpx.get(started["auth_url"], follow_redirects=False, timeout=30)
        assert consent.status_code == 302
        callback = consent.headers["location"]
        query = parse_qs(urlsplit(callback).query)
        assert query["state"] == [started["state"]]
        base = callback.split("?")[0]

        forged = httpx.get(base, params={"state": "forged-" + unique, "code": query["code"][0]})
        assert forged.status_code == 400
        assert "text/html" in forged.headers["content-type"]
        assert "unknown or was already used" in forged.text
        assert accounts(ada) == {}

        first = httpx.get(callback, timeout=30)
        assert first.status_code == 200, first.text
        assert "connected" in first.text
        replayed = httpx.get(callback, timeout=30)
        assert replayed.status_code == 400
        assert "already used" in replayed.text

        # An expired sign-in: its state no longer works, even once.
        late = start_sign_in(ada, email)
        with Session(world.db) as session:
            for flow in session.exec(select(OAuthFlow)):
                flow.expires_at = flow.created_at
                session.add(flow)
            session.commit()
        expired = httpx.get(late["auth_url"], follow_redirects=True, timeout=30)
        assert expired.status_code == 400
        assert "expired" in expired.text

        # A refusal at Google's end uses the state up and connects nothing new.
        refused = start_sign_in(ada, email)
        answer = httpx.get(base, params={"state": refused["state"], "error": "access_denied"})
        assert answer.status_code == 400
        assert "access_denied" in answer.text
        again = httpx.get(base, params={"state": refused["state"], "code": "4/whatever"})
        assert again.status_code == 400

        # A good state with a code Google never issued.
        bogus = start_sign_in(ada, email)
        answer = httpx.get(base, params={"state": bogus["state"], "code": "4/made-up"})
        assert answer.status_code == 400
        assert "refused the sign-in code" in answer.text

        # Hostile or careless callers of the API side.
        assert (
            httpx.post(world.url + "api/v1/accounts/google/authorize", json={}).status_code == 401
        )
        too_long = ada.post("/api/v1/accounts/google/authorize", json={"login_hint": "x" * 400})
        assert too_long.status_code == 400
        unknown = ada.post("/api/v1/accounts/google/authorize", json={"nope": 1})
        assert unknown.status_code == 400
        assert httpx.get(base, params={"state": "s" * 5000}).status_code == 400
        assert list(accounts(ada)) == [email]


def test_tokens_at_rest_are_encrypted_and_the_key_is_private(
    world: ServerWorld, unique: str
) -> None:
    email = f"vault-{unique}@example.com"
    google_account(world, email)
    with world.api("ada") as ada:
        sign_in(ada, email)
        cals = calendars(ada, email)
        world.enable(ada, cals["primary"])
        wait_until(
            timeout=SETTLE_S, probe=lambda: world.logs(ada, cals["primary"]), what="the first sync"
        )
    credentials = stored(world, email)
    assert credentials.access_token
    assert credentials.refresh_token
    secrets_ = [credentials.access_token.encode(), credentials.refresh_token.encode()]
    url = sa.make_url(world.settings.database_url_resolved)
    if url.get_backend_name() == "sqlite":
        assert url.database
        path = Path(url.database)
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        data = b"".join(p.read_bytes() for p in files)
        assert email.encode() in data  # the right file: the account is in it
        for secret in secrets_:
            assert secret not in data
    else:
        with world.db.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM account")).all()
        dump = repr(rows).encode()
        assert email.encode() in dump
        for secret in secrets_:
            assert secret not in dump
    home = world.settings.home
    assert stat.S_IMODE((home / KEY_FILE).stat().st_mode) == 0o600
    assert not (home / CLIENT_FILE).exists()  # the emulator needs no client of the user's


# -- tokens: refresh, needs_reauth, re-authorisation -----------------------------------------


def test_an_access_token_google_dropped_is_refreshed_and_sealed_back(
    world: ServerWorld, unique: str
) -> None:
    work, home = f"work-{unique}@example.com", f"home-{unique}@example.com"
    google_account(world, work)
    google_account(world, home)
    with world.api("ada") as ada:
        sign_in(ada, work)
        sign_in(ada, home)
        w, h = calendars(ada, work)["primary"], calendars(ada, home)["primary"]
        world.enable(ada, w, h)
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: world.settled(ada) and world.logs(ada, h),
            what="first syncs",
        )
        before = stored(world, work)
        # Google forgets the access token (as when it expires); its expiry still looks fine.
        assert world.admin.post("/revoke", data={"token": before.access_token}).status_code == 200

        world.insert(w, **timed("Standup", 8, 9))
        sync_now(ada)
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(h)) == [at(8)],
            what="the block in home",
        )
        wait_until(timeout=SETTLE_S, probe=lambda: world.settled(ada), what="the queue to drain")
        after = stored(world, work)
        assert after.access_token != before.access_token
        assert after.refresh_token == before.refresh_token
        assert accounts(ada)[work]["state"] == "active"
        assert world.logs(ada, w)[0]["status"] == "success"


def test_tokens_are_refreshed_before_they_expire(
    database_url: str, tmp_path: Path, unique: str
) -> None:
    # Access tokens that live 5 s: inside google-auth's refresh margin, so each use refreshes.
    with run_emulator(EmulatorConfig(access_token_lifetime_s=5)) as emulator:
        world = ServerWorld(emulator, database_url, tmp_path / "home", poll_interval_seconds=3600)
        try:
            world.start(push=False)
            work, home = f"work-{unique}@example.com", f"home-{unique}@example.com"
            google_account(world, work)
            google_account(world, home)
            with world.api("ada") as ada:
                sign_in(ada, work)
                sign_in(ada, home)
                signed_in = stored(world, work)
                assert signed_in.expiry is not None
                w, h = calendars(ada, work)["primary"], calendars(ada, home)["primary"]
                world.insert(w, **timed("Review", 13, 14))
                world.enable(ada, w, h)
                wait_until(
                    timeout=SETTLE_S,
                    probe=lambda: starts(world.blocks(h)) == [at(13)],
                    what="the block",
                )
                wait_until(
                    timeout=SETTLE_S, probe=lambda: world.settled(ada), what="the queue to drain"
                )
                refreshed = stored(world, work)
                assert refreshed.access_token != signed_in.access_token
                assert refreshed.expiry is not None
                # Sign-in stores whole seconds (oauthlib's expires_at): a refresh within the
                # same second may end a fraction earlier, never a second.
                assert refreshed.expiry > signed_in.expiry - timedelta(seconds=1)
                assert all(log["status"] == "success" for log in world.logs(ada, w))
        finally:
            world.close()


def test_a_revoked_login_needs_reauth_alone_and_signing_in_again_restores_it(
    world: ServerWorld, unique: str
) -> None:
    work, home = f"work-{unique}@example.com", f"home-{unique}@example.com"
    google_account(world, work, "Team")
    google_account(world, home)
    with world.api("ada") as ada:
        sign_in(ada, work)
        sign_in(ada, home)
        w, h = calendars(ada, work), calendars(ada, home)["primary"]
        world.insert(w["primary"], **timed("Board meeting", 9, 10))
        world.enable(ada, w["primary"], w["Team"])
        world.enable(ada, h, busy_title="title")
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(h)) == [at(9)],
            what="the first block in home",
        )
        wait_until(timeout=SETTLE_S, probe=lambda: world.settled(ada), what="first syncs")
        home_id = accounts(ada)[home]["id"]
        revoked = stored(world, home).refresh_token
        assert revoked
        # The user removes calsync's access in their Google account.
        assert world.admin.post("/revoke", data={"token": revoked}).status_code == 200

        # A change in work must be written into home: home's login fails, only home is marked.
        world.insert(w["primary"], **timed("Lunch", 12, 13))
        sync_now(ada)
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: accounts(ada)[home]["state"] == "needs_reauth",
            what="home needing reauth",
        )
        assert accounts(ada)[work]["state"] == "active"
        # Work keeps syncing into its own calendars.
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(w["Team"])) == [at(9), at(12)],
            what="work's blocks",
        )
        world.insert(w["primary"], **timed("Retro", 16, 17))
        sync_now(ada)
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(w["Team"])) == [at(9), at(12), at(16)],
            what="work still syncing",
        )
        wait_until(timeout=SETTLE_S, probe=lambda: world.settled(ada), what="the queue to drain")
        assert accounts(ada)[work]["state"] == "active"
        # No block is deleted because a login expired.
        assert starts(world.blocks(h)) == [at(9)]
        world.insert(h, **timed("Gym", 18, 19))

        sign_in(ada, home)
        assert accounts(ada)[home]["id"] == home_id
        assert accounts(ada)[home]["state"] == "active"
        assert calendars(ada, home)["primary"] == h
        row = next(c for c in ada.get("/api/v1/calendars").json() if c["id"] == h.id)
        assert row["sync_enabled"]
        assert row["busy_title"] == "title"
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(h)) == [at(9), at(12), at(16)],
            what="home caught up after re-authorisation",
        )
        assert {b["summary"] for b in world.blocks(h)} == {"Busy"}  # work's title is private
        # What happened in home meanwhile arrives too, titled as home's setting says.
        team = wait_until(
            timeout=SETTLE_S,
            probe=lambda: [b for b in world.blocks(w["Team"]) if b["start"]["dateTime"] == at(18)],
            what="home's event from while it was signed out, in Team",
        )
        assert [b["summary"] for b in team] == ["Busy - Gym"]
        assert refresh_grant(world, revoked).status_code == 400
        assert stored(world, home).refresh_token != revoked


# -- disconnect -------------------------------------------------------------------------------


def test_disconnect_leaves_no_block_of_the_account_anywhere_and_revokes_its_token(
    world: ServerWorld, unique: str
) -> None:
    work, home = f"work-{unique}@example.com", f"home-{unique}@example.com"
    google_account(world, work, "Team")
    google_account(world, home, "Kids")
    with world.api("ada") as ada:
        sign_in(ada, work)
        sign_in(ada, home)
        w, h = calendars(ada, work), calendars(ada, home)
        world.insert(w["primary"], **timed("Board meeting", 9, 10))
        world.insert(h["primary"], **timed("School run", 15, 16))
        world.insert(h["Kids"], **timed("Football", 17, 18))
        world.enable(ada, w["primary"], w["Team"], h["primary"], h["Kids"])
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(w["Team"])) == [at(9), at(15), at(17)],
            what="every block in Team",
        )
        wait_until(
            timeout=SETTLE_S,
            probe=lambda: starts(world.blocks(h["Kids"])) == [at(9), at(15)],
            what="Kids",
        )
        wait_until(timeout=SETTLE_S, probe=lambda: world.settled(ada), what="first syncs")
        home_id = accounts(ada)[home]["id"]
        refresh = stored(world, home).refresh_token
        assert refresh
        assert refresh_grant(world, refresh).status_code == 200

        answer = ada.delete(f"/api/v1/accounts/{home_id}")
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["email"] == home
        assert report["token_revoked"] is True

        # No block sourced by home remains in work, and home's calendars hold no calsync block.
        assert starts(world.blocks(w["Team"])) == [at(9)]
        assert world.blocks(w["primary"]) == []
        assert world.blocks(h["primary"]) == []
        assert world.blocks(h["Kids"]) == []
        assert refresh_grant(world, refresh).status_code == 400
        assert list(accounts(ada)) == [work]
        assert calendars(ada, home) == {}
        assert ada.delete(f"/api/v1/accounts/{home_id}").status_code == 404
