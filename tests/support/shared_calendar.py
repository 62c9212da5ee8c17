"""One calendar reached through two of a user's accounts: the emulator shares it into a second
login when that login's calendar spec names the calendar's id."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from calsync_server.accounts.service import connect_account, import_calendars
from calsync_server.accounts.vault import GoogleOAuth
from tests.support.world import Cal, World


def connect_with(world: World, email: str, calendars: list[dict[str, Any]]) -> dict[str, Cal]:
    """Like World.account, with the emulator's calendar specs as given: a spec with the `id`
    of an existing calendar shares that calendar into this account."""
    answer = world.admin.post(
        "/emulator/accounts",
        json={"email": email, "time_zone": "Europe/Berlin", "calendars": calendars},
    )
    assert answer.status_code == 201, answer.text
    data = answer.json()
    world.tokens[email] = data
    credentials = GoogleOAuth(
        access_token=data["access_token"], refresh_token=data["refresh_token"]
    )
    with Session(world.db) as session:
        account = connect_account(
            session,
            world.vault,
            user_id=world.user(),
            email=email,
            credentials=credentials,
            now=datetime.now(UTC),
        )
        factory = world.engine.provider_factory
        with closing(factory(account.provider, account.id, credentials)) as provider:
            imported = import_calendars(session, account, provider)
        session.commit()
        by_provider_id = {c.provider_calendar_id: c for c in imported}
    made = {c["summary"] if c["id"] != email else "primary": c["id"] for c in data["calendars"]}
    result = {}
    for summary, provider_id in made.items():
        calendar = by_provider_id[provider_id]
        assert calendar.id is not None
        result[summary] = Cal(calendar.id, provider_id, email)
    return result
