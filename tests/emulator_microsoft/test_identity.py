"""Sign-in: MSAL Python against the emulator's identity v2.0 endpoints over TLS, and the token
endpoint's refusals (PKCE, expired and revoked refresh tokens) with plain httpx."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msal
import requests

from tests.emulator_microsoft.conftest import Account, Graph

CLIENT_ID = "00000000-0000-0000-0000-0000000c0de1"
REDIRECT = "http://localhost:8765/oauth/microsoft/callback"
SCOPES = ["Calendars.ReadWrite", "User.Read"]


def _app(
    graph: Graph, cache: msal.SerializableTokenCache | None = None
) -> msal.PublicClientApplication:
    # MSAL's own `verify=` loses to REQUESTS_CA_BUNDLE when that is set (a requests quirk):
    # a session that ignores the environment trusts exactly the emulator's CA.
    session = requests.Session()
    session.trust_env = False
    session.verify = graph.ca_path
    return msal.PublicClientApplication(
        CLIENT_ID,
        authority=f"{graph.tls_url}common",
        instance_discovery=False,
        http_client=session,
        token_cache=cache,
    )


def _sign_in(graph: Graph, app: msal.PublicClientApplication, account: Account) -> dict[str, Any]:
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, login_hint=account.email)
    with httpx.Client(verify=graph.ca_path) as browser:
        consent = browser.get(flow["auth_uri"])
    assert consent.status_code == 302, consent.text
    location = consent.headers["location"]
    assert location.startswith(REDIRECT)
    reply = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, reply)
    assert "access_token" in result, result
    return result


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def test_msal_signs_in_with_pkce_and_the_token_reads_graph(graph: Graph) -> None:
    account = graph.account(name="Alex Morgan")
    app = _app(graph)
    result = _sign_in(graph, app, account)
    claims = result["id_token_claims"]
    assert claims["oid"] == account.oid
    assert claims["tid"] == account.tenant_id
    assert claims["preferred_username"] == account.email
    assert claims["aud"] == CLIENT_ID
    # MSAL built its account from client_info: home_account_id is uid.utid.
    accounts = app.get_accounts()
    assert [a["home_account_id"] for a in accounts] == [f"{account.oid}.{account.tenant_id}"]
    assert accounts[0]["username"] == account.email
    me = httpx.get(
        f"{graph.url}v1.0/me", headers={"authorization": f"Bearer {result['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["userPrincipalName"] == account.email


def test_discovery_names_the_tls_endpoints(graph: Graph) -> None:
    config = httpx.get(
        f"{graph.tls_url}organizations/v2.0/.well-known/openid-configuration",
        verify=graph.ca_path,
    ).json()
    assert config["authorization_endpoint"] == f"{graph.tls_url}organizations/oauth2/v2.0/authorize"
    assert config["token_endpoint"] == f"{graph.tls_url}organizations/oauth2/v2.0/token"
    assert config["issuer"] == f"{graph.tls_url}{{tenantid}}/v2.0"


def test_silent_refresh_rotates_the_refresh_token(graph: Graph) -> None:
    account = graph.account()
    cache = msal.SerializableTokenCache()
    app = _app(graph, cache)
    first = _sign_in(graph, app, account)
    old_refresh = first["refresh_token"]
    refreshed = app.acquire_token_silent_with_error(
        SCOPES, app.get_accounts()[0], force_refresh=True
    )
    assert refreshed is not None
    assert "access_token" in refreshed, refreshed
    assert refreshed["access_token"] != first["access_token"]
    stored = json.loads(cache.serialize())["RefreshToken"]
    new_refresh = [entry["secret"] for entry in stored.values()]
    assert new_refresh
    assert old_refresh not in new_refresh


def _code(graph: Graph, account: Account, challenge: str, method: str = "S256") -> httpx.Response:
    with httpx.Client(verify=graph.ca_path) as browser:
        return browser.get(
            f"{graph.tls_url}common/oauth2/v2.0/authorize",
            params={
                "client_id": CLIENT_ID,
                "response_type": "code",
                "redirect_uri": REDIRECT,
                "scope": "Calendars.ReadWrite offline_access",
                "login_hint": account.email,
                "code_challenge": challenge,
                "code_challenge_method": method,
                "state": "s1",
            },
        )


def _token(graph: Graph, **form: str) -> httpx.Response:
    return httpx.post(
        f"{graph.tls_url}common/oauth2/v2.0/token",
        data={"client_id": CLIENT_ID, **form},
        verify=graph.ca_path,
    )


def test_pkce_s256_is_checked(graph: Graph) -> None:
    account = graph.account()
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    redirect = _code(graph, account, challenge)
    query = parse_qs(urlsplit(redirect.headers["location"]).query)
    assert query["state"] == ["s1"]
    wrong = _token(
        graph,
        grant_type="authorization_code",
        code=query["code"][0],
        redirect_uri=REDIRECT,
        code_verifier=secrets.token_urlsafe(48),
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["error_codes"] == [501481]
    # A plain challenge is refused at the authorize step.
    plain = _code(graph, account, verifier, method="plain")
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
    redirect = _code(graph, account, challenge)
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    right = _token(
        graph,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert right.status_code == 200, right.text
    body = right.json()
    assert {"access_token", "refresh_token", "id_token", "client_info"} <= set(body)
    assert _claims(body["id_token"])["oid"] == account.oid


def test_revoked_refresh_tokens_are_refused(graph: Graph) -> None:
    account = graph.account()
    answer = httpx.post(
        f"{graph.url}v1.0/me/revokeSignInSessions",
        headers={"authorization": f"Bearer {account.access_token}"},
    )
    assert answer.status_code == 200
    refused = _token(graph, grant_type="refresh_token", refresh_token=account.refresh_token)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_codes"] == [50173]


def test_expired_tokens_are_refused(graph: Graph) -> None:
    """Runs last in this module: it moves the emulator's clock 90 days on."""
    account = graph.account()
    renewed = _token(graph, grant_type="refresh_token", refresh_token=account.refresh_token)
    assert renewed.status_code == 200
    rotated = renewed.json()["refresh_token"]
    assert rotated != account.refresh_token
    graph.advance(3601)
    me = httpx.get(
        f"{graph.url}v1.0/me", headers={"authorization": f"Bearer {account.access_token}"}
    )
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "InvalidAuthenticationToken"
    graph.advance(89 * 86400)
    # The rotated token was issued an hour later: it lives on a little longer, rolling.
    still = _token(graph, grant_type="refresh_token", refresh_token=rotated)
    assert still.status_code == 200, still.text
    graph.advance(86400)
    expired = _token(graph, grant_type="refresh_token", refresh_token=account.refresh_token)
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"
    assert expired.json()["error_codes"] == [700082]
