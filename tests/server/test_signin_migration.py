"""Migration 0009: a Google sign-in started before the upgrade (its PKCE verifier in
oauth_flow.code_verifier) finishes after it, its verifier now the flow's state; the downgrade
gives Google's pending sign-ins their verifier back and drops the others'."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from calsync_server.accounts.service import token_hash
from calsync_server.db.engine import alembic_config, upgrade_database
from calsync_server.emulators.google.runner import RunningEmulator
from calsync_server.providers.google.client import SCOPES
from tests.server.conftest import ServerWorld

# Where the browser was to come back: any address, the same at consent and at the exchange.
REDIRECT = "http://127.0.0.1:9/oauth/google/callback"
USER = "INSERT INTO \"user\" (name, api_token_hash, created_at) VALUES ('ada', :h, :n)"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _pending(engine: sa.Engine, provider: str, state: str, verifier: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO oauth_flow (state_hash, user_id, provider, code_verifier, "
                "redirect_uri, created_at, expires_at) VALUES (:hash, 1, :provider, :verifier, "
                ":redirect, :now, :expires)"
            ),
            {
                "hash": hashlib.sha256(state.encode()).hexdigest(),
                "provider": provider,
                "verifier": verifier,
                "redirect": REDIRECT,
                "now": now,
                "expires": now + timedelta(minutes=10),
            },
        )


@pytest.mark.empty_database
def test_a_google_sign_in_started_before_the_upgrade_finishes_after_it(
    emulator: RunningEmulator, db_engine: sa.Engine, database_url: str, tmp_path: Path, unique: str
) -> None:
    upgrade_database(db_engine, "0008")
    with db_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO \"user\" (name, api_token_hash, created_at) VALUES ('ada', :h, :n)"
            ),
            {"h": token_hash("token-ada"), "n": datetime.now(UTC)},
        )
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    _pending(db_engine, "google", state, verifier)
    email = f"before-{unique}@example.com"
    made = httpx.post(f"{emulator.url}emulator/accounts", json={"email": email})
    assert made.status_code == 201, made.text
    # The consent the person gave while the old server ran: its code waits in the redirect.
    consent = httpx.get(
        f"{emulator.url}o/oauth2/auth?"
        + urlencode(
            {
                "client_id": "calsync-emulator",
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": " ".join(SCOPES),
                "state": state,
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
                "login_hint": email,
            }
        )
    )
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]

    # The new server upgrades the database; the browser arrives at its callback.
    world = ServerWorld(emulator, database_url, tmp_path / "home", poll_interval_seconds=3600.0)
    try:
        with db_engine.connect() as connection:
            kept = connection.execute(sa.text("SELECT flow_state FROM oauth_flow")).scalars().all()
        assert kept == [verifier]
        world.start(push=False)
        page = httpx.get(
            f"{world.url}oauth/google/callback", params={"state": state, "code": code}, timeout=30
        )
        assert page.status_code == 200, page.text
        assert f"{email} is connected" in page.text
        with world.api() as api:
            assert [a["email"] for a in api.get("/api/v1/accounts").json()] == [email]
    finally:
        world.close()


@pytest.mark.empty_database
def test_the_downgrade_keeps_googles_pending_sign_ins_and_drops_the_others(
    db_engine: sa.Engine,
) -> None:
    upgrade_database(db_engine, "0008")
    with db_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO \"user\" (name, api_token_hash, created_at) VALUES ('ada', 'h', :n)"
            ),
            {"n": datetime.now(UTC)},
        )
    _pending(db_engine, "google", "g-state", "g-verifier")
    upgrade_database(db_engine, "0009")
    with db_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO oauth_flow (state_hash, user_id, provider, flow_state, redirect_uri, "
                "created_at, expires_at) VALUES ('m', 1, 'microsoft', :flow, :r, :n, :n)"
            ),
            {
                "flow": '{"code_verifier": "' + "v" * 200 + '"}',
                "r": REDIRECT,
                "n": datetime.now(UTC),
            },
        )

    command.downgrade(alembic_config(db_engine), "0008")
    with db_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT provider, code_verifier FROM oauth_flow")).all()
    assert [tuple(r) for r in rows] == [("google", "g-verifier")]
