"""Bearer auth: Google's 401 bodies, and access tokens that expire so refresh is exercised."""

from __future__ import annotations

from typing import Any

import google.oauth2.credentials
import httpx

from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.runner import run_emulator
from tests.emulator_google.conftest import Emu
from tests.support.google_service import calendar_service
from tests.support.waiting import wait_until

AUTH_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def test_missing_bearer_is_401_login_required(emu: Emu) -> None:
    answer = httpx.get(f"{emu.url}calendar/v3/users/me/calendarList")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "code": 401,
            "message": f"Request is missing required authentication credential. {AUTH_HINT}",
            "errors": [
                {
                    "message": "Login Required.",
                    "domain": "global",
                    "reason": "required",
                    "location": "Authorization",
                    "locationType": "header",
                }
            ],
            "status": "UNAUTHENTICATED",
        }
    }
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_unknown_token_is_401_invalid_credentials(emu: Emu) -> None:
    answer = httpx.get(
        f"{emu.url}calendar/v3/users/me/calendarList",
        headers={"authorization": "Bearer ya29.not-a-token"},
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["errors"][0]["reason"] == "authError"
    assert error["errors"][0]["message"] == "Invalid Credentials"
    assert error["message"] == f"Request had invalid authentication credentials. {AUTH_HINT}"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_expired_access_token_is_refreshed_by_the_client_library() -> None:
    with run_emulator(EmulatorConfig(access_token_lifetime_s=0.5)) as running:
        admin = httpx.Client(base_url=running.url)
        data = admin.post("/emulator/accounts", json={"email": "r@example.com"}).json()

        def status() -> int:
            return httpx.get(
                f"{running.url}calendar/v3/calendars/primary",
                headers={"authorization": f"Bearer {data['access_token']}"},
            ).status_code

        assert status() == 200
        wait_until(lambda: status() == 401, timeout=10, what="the access token to expire")
        credentials: Any = google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
            token=data["access_token"],
            refresh_token=data["refresh_token"],
            token_uri=f"{running.url}token",
            client_id="calsync-test",
            client_secret="unused",
        )
        service = calendar_service(running.url, credentials=credentials)
        # The stale token gets 401, the library refreshes against /token and retries.
        assert service.calendars().get(calendarId="primary").execute()["id"] == "r@example.com"
        assert credentials.token != data["access_token"]
        admin.close()
