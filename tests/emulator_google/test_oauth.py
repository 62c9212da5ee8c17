"""OAuth endpoints: consent, code exchange with PKCE, refresh, revoke, userinfo."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.emulator_google.conftest import Emu
from tests.support.google_service import calendar_service

REDIRECT = "http://127.0.0.1:9/callback"
SCOPE = "https://www.googleapis.com/auth/calendar"


class Pkce:
    """What an installed app sends (as InstalledAppFlow does): PKCE S256 and offline access.
    Built here because oauthlib refuses plain-HTTP endpoints such as a loopback emulator."""

    def __init__(self, emu: Emu) -> None:
        self.emu = emu
        self.code_verifier = secrets.token_urlsafe(64)
        digest = hashlib.sha256(self.code_verifier.encode()).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorization_url(self, **extra: str) -> tuple[str, str]:
        state = secrets.token_urlsafe(16)
        params = {
            "client_id": "calsync-desktop",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": SCOPE,
            "state": state,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.emu.url}o/oauth2/auth?{urlencode(params)}", state


def _flow(emu: Emu) -> Pkce:
    return Pkce(emu)


def _code(emu: Emu, url: str) -> dict[str, list[str]]:
    answer = httpx.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


def _exchange(emu: Emu, code: str, verifier: str) -> httpx.Response:
    return httpx.post(
        f"{emu.url}token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "client_id": "calsync-desktop",
        },
    )


def test_pkce_code_flow_gives_working_tokens(emu: Emu) -> None:
    emu.account(email="solo@example.com")
    flow = _flow(emu)
    url, state = flow.authorization_url(access_type="offline", prompt="consent")
    query = _code(emu, url)  # the only account: consent is automatic
    assert query["state"] == [state]
    code = query["code"][0]
    assert _exchange(emu, code, "the-wrong-verifier").status_code == 400
    url, _ = flow.authorization_url(access_type="offline")
    code = _code(emu, url)["code"][0]
    answer = _exchange(emu, code, flow.code_verifier)
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] > 0
    assert tokens["refresh_token"]
    # A code works once.
    assert _exchange(emu, code, flow.code_verifier).json()["error"] == "invalid_grant"
    service = calendar_service(emu.url, tokens["access_token"])
    assert service.calendars().get(calendarId="primary").execute()["id"] == "solo@example.com"
    info = httpx.get(
        f"{emu.url}oauth2/v3/userinfo",
        headers={"authorization": f"Bearer {tokens['access_token']}"},
    ).json()
    assert info["email"] == "solo@example.com"
    assert info["email_verified"] is True
    assert httpx.get(f"{emu.url}oauth2/v3/userinfo").status_code == 401


def test_several_accounts_need_a_login_hint_or_a_choice(emu: Emu) -> None:
    emu.account(email="one@example.com")
    emu.account(email="two@example.com")
    flow = _flow(emu)
    url, _ = flow.authorization_url(access_type="offline")
    page = httpx.get(url)
    assert page.status_code == 200
    assert "one@example.com" in page.text
    assert "two@example.com" in page.text
    url, _ = flow.authorization_url(access_type="offline", login_hint="two@example.com")
    code = _code(emu, url)["code"][0]
    tokens = _exchange(emu, code, flow.code_verifier).json()
    service = calendar_service(emu.url, tokens["access_token"])
    assert service.calendars().get(calendarId="primary").execute()["id"] == "two@example.com"
    assert httpx.get(f"{emu.url}o/oauth2/auth", params={"client_id": "x"}).status_code == 400


def test_refresh_and_revoke(emu: Emu) -> None:
    account = emu.account()
    refreshed = httpx.post(
        f"{emu.url}token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": account.refresh_token,
            "client_id": "x",
        },
    )
    assert refreshed.status_code == 200
    access = refreshed.json()["access_token"]
    assert access != account.access_token
    service = calendar_service(emu.url, access)
    assert service.calendars().get(calendarId="primary").execute()["id"] == account.email
    assert (
        httpx.post(f"{emu.url}revoke", params={"token": account.refresh_token}).status_code == 200
    )
    # Revoking the grant kills its access tokens and refreshing fails.
    raw = httpx.get(
        f"{emu.url}calendar/v3/calendars/primary", headers={"authorization": f"Bearer {access}"}
    )
    assert raw.status_code == 401
    again = httpx.post(
        f"{emu.url}token",
        data={"grant_type": "refresh_token", "refresh_token": account.refresh_token},
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert httpx.post(f"{emu.url}revoke", data={"token": "unknown"}).status_code == 400
    assert httpx.post(f"{emu.url}token", data={"grant_type": "password"}).status_code == 400
