"""Sign-in judges what Google's grant covers, not the spelling of its scope string: a wider
grant, another order or short forms connect; a grant without calendar access is refused,
naming what is missing. Through the emulator's token answer, over the real OAuth client."""

from __future__ import annotations

import httpx
import pytest

from calsync_server.providers.google.signin import granted_gaps
from tests.server.conftest import ServerWorld
from tests.server.test_accounts import accounts, calendars, google_account, start_sign_in

ROOT = "https://www.googleapis.com/auth/"
ASKED = f"{ROOT}calendar.calendarlist.readonly {ROOT}calendar.events openid {ROOT}userinfo.email"


@pytest.fixture
def world(server_world: ServerWorld) -> ServerWorld:
    server_world.start(push=False)
    return server_world


def grant(world: ServerWorld, email: str, scope: str | None) -> None:
    answer = world.admin.put(f"/emulator/accounts/{email}/granted-scope", json={"scope": scope})
    assert answer.status_code == 200, answer.text


def consent(api: httpx.Client, email: str) -> httpx.Response:
    """The browser's round trip: consent at the emulator, back to calsync's callback."""
    started = start_sign_in(api, email)
    return httpx.get(started["auth_url"], follow_redirects=True, timeout=30)


@pytest.mark.parametrize(
    "granted",
    [
        pytest.param(f"openid email {ROOT}calendar", id="superset: calendar covers both"),
        pytest.param(
            f"{ROOT}userinfo.email openid {ROOT}calendar.events "
            f"{ROOT}calendar.calendarlist.readonly",
            id="same set, another order",
        ),
        pytest.param(
            f"email openid {ROOT}calendar.calendarlist.readonly {ROOT}calendar.events",
            id="short form email",
        ),
        pytest.param(
            f"{ROOT}calendar.events {ROOT}calendar.readonly {ROOT}userinfo.email "
            f"{ROOT}userinfo.profile openid {ROOT}drive.file",
            id="more than asked, list covered by calendar.readonly",
        ),
    ],
)
def test_a_grant_that_covers_what_calsync_needs_connects(
    world: ServerWorld, unique: str, granted: str
) -> None:
    email = f"wide-{unique}@example.com"
    google_account(world, email, "Team")
    grant(world, email, granted)
    with world.api("ada") as ada:
        page = consent(ada, email)
        assert page.status_code == 200, page.text
        assert "connected" in page.text
        assert accounts(ada)[email]["state"] == "active"
        assert set(calendars(ada, email)) == {"primary", "Team"}


@pytest.mark.parametrize(
    ("granted", "missing", "words"),
    [
        pytest.param(
            f"openid {ROOT}userinfo.email {ROOT}calendar.calendarlist.readonly",
            f"{ROOT}calendar.events",
            "view and edit events on all your calendars",
            id="events unticked",
        ),
        pytest.param(
            f"openid email {ROOT}calendar.events",
            f"{ROOT}calendar.calendarlist.readonly",
            "see the list of calendars you are subscribed to",
            id="calendar list unticked",
        ),
        pytest.param(
            f"openid email {ROOT}calendar.readonly",
            f"{ROOT}calendar.events",
            "view and edit events on all your calendars",
            id="read-only calendar access cannot write blocks",
        ),
    ],
)
def test_a_grant_without_calendar_access_is_refused_naming_what_is_missing(
    world: ServerWorld, unique: str, granted: str, missing: str, words: str
) -> None:
    email = f"narrow-{unique}@example.com"
    google_account(world, email)
    grant(world, email, granted)
    with world.api("ada") as ada:
        page = consent(ada, email)
        assert page.status_code == 400, page.text
        assert "Sign-in failed" in page.text
        assert missing in page.text
        assert words in page.text
        assert accounts(ada) == {}

        # Signing in again with the box ticked connects.
        grant(world, email, None)
        again = consent(ada, email)
        assert again.status_code == 200, again.text
        assert list(accounts(ada)) == [email]


def test_both_calendar_permissions_unticked_names_both(world: ServerWorld, unique: str) -> None:
    email = f"none-{unique}@example.com"
    google_account(world, email)
    grant(world, email, "openid email profile")
    with world.api("ada") as ada:
        page = consent(ada, email)
        assert page.status_code == 400
        assert f"{ROOT}calendar.events" in page.text
        assert f"{ROOT}calendar.calendarlist.readonly" in page.text
        assert accounts(ada) == {}


def test_coverage_is_judged_by_meaning() -> None:
    assert granted_gaps(ASKED) == []
    assert granted_gaps(ASKED.split()[::-1]) == []
    assert granted_gaps(f"email {ROOT}calendar") == []
    assert granted_gaps(f"{ROOT}calendar/ email") == []
    assert [scope for scope, _ in granted_gaps("openid email")] == [
        f"{ROOT}calendar.events",
        f"{ROOT}calendar.calendarlist.readonly",
    ]
    assert [scope for scope, _ in granted_gaps(f"{ROOT}calendar")] == [f"{ROOT}userinfo.email"]


def test_the_emulator_admin_refuses_a_bad_grant(world: ServerWorld, unique: str) -> None:
    email = f"admin-{unique}@example.com"
    google_account(world, email)
    base = "/emulator/accounts/{}/granted-scope"
    assert world.admin.put(base.format(email), json={"scope": ""}).status_code == 400
    assert world.admin.put(base.format(email), json={"scope": 3}).status_code == 400
    assert world.admin.put(base.format(email), json={}).status_code == 400
    assert (
        world.admin.put(base.format("nobody@example.com"), json={"scope": None}).status_code == 404
    )
