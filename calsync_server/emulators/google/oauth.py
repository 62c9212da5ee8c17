"""Google's OAuth endpoints: consent (auto for a known account), token with PKCE and refresh,
revoke, userinfo."""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any
from urllib.parse import urlencode, urlsplit

from calsync_server.emulators.common.api import SignInAnswer
from calsync_server.emulators.google import errors
from calsync_server.emulators.google.store import AuthCode, Store

DEFAULT_SCOPE = "https://www.googleapis.com/auth/calendar"


def _token_error(error: str, description: str, status: int = 400) -> SignInAnswer:
    return SignInAnswer(status, {"error": error, "error_description": description})


def authorize(store: Store, params: dict[str, str], self_url: str) -> SignInAnswer:
    """`GET /o/oauth2/auth`: consent is automatic when the account is known (login_hint) or
    is the only one; otherwise a page lets the user pick."""
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
        return SignInAnswer(400, html="<h1>400</h1><p>Missing or invalid redirect_uri.</p>")
    if params.get("response_type", "code") != "code":
        return SignInAnswer(400, html="<h1>400</h1><p>Unsupported response_type.</p>")
    if not params.get("client_id"):
        return SignInAnswer(400, html="<h1>400</h1><p>Missing required parameter: client_id</p>")
    with store.lock:
        emails = list(store.accounts)
    hint = params.get("login_hint")
    if hint in emails:
        email = hint
    elif len(emails) == 1:
        email = emails[0]
    else:
        links = "".join(
            f'<li><a href="{html.escape(self_url + "?" + urlencode({**params, "login_hint": e}))}">'
            f"{html.escape(e)}</a></li>"
            for e in emails
        )
        body = links or "<li>No accounts yet: create one with POST /emulator/accounts.</li>"
        page = (
            "<!doctype html><title>Choose an account</title>"
            f"<h1>Choose an account</h1><ul>{body}</ul>"
        )
        return SignInAnswer(200, html=page)
    with store.lock:
        granted = store.accounts[email].granted_scope
    scope = granted if granted is not None else params.get("scope", DEFAULT_SCOPE)
    code = store.new_auth_code(
        AuthCode(
            email=email,
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=params.get("code_challenge"),
            code_challenge_method=params.get("code_challenge_method"),
        )
    )
    query = {"code": code, "scope": scope}
    if "state" in params:
        query = {"state": params["state"], **query}
    separator = "&" if "?" in redirect_uri else "?"
    return SignInAnswer(302, location=redirect_uri + separator + urlencode(query))


def _pkce_ok(code: AuthCode, verifier: str | None) -> bool:
    if code.code_challenge is None:
        return True
    if not verifier:
        return False
    if (code.code_challenge_method or "plain") == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return expected == code.code_challenge
    return verifier == code.code_challenge


def token(store: Store, form: dict[str, str]) -> SignInAnswer:
    """`POST /token`: authorization_code (with PKCE) or refresh_token grants."""
    grant = form.get("grant_type")
    lifetime = int(store.config.access_token_lifetime_s)
    if grant == "authorization_code":
        code = store.redeem_code(form.get("code", ""))
        if code is None:
            return _token_error("invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") and form["redirect_uri"] != code.redirect_uri:
            return _token_error("redirect_uri_mismatch", "Bad Request")
        if not _pkce_ok(code, form.get("code_verifier")):
            return _token_error("invalid_grant", "Invalid code verifier.")
        access, refresh = store.new_grant(code.email)
        return SignInAnswer(
            200,
            {
                "access_token": access,
                "expires_in": lifetime,
                "refresh_token": refresh,
                "scope": code.scope,
                "token_type": "Bearer",
            },
        )
    if grant == "refresh_token":
        refresh_token = form.get("refresh_token", "")
        with store.lock:
            email = store.refresh_tokens.get(refresh_token)
        if email is None:
            return _token_error("invalid_grant", "Token has been expired or revoked.")
        access = store.issue_access_token(email, refresh_token)
        with store.lock:
            known = store.accounts.get(email)
            granted = known.granted_scope if known is not None else None
        return SignInAnswer(
            200,
            {
                "access_token": access,
                "expires_in": lifetime,
                "scope": granted or DEFAULT_SCOPE,
                "token_type": "Bearer",
            },
        )
    return _token_error("unsupported_grant_type", f"Invalid grant_type: {grant}")


def grant_scope(store: Store, email: str, body: Any) -> SignInAnswer:
    """`PUT /emulator/accounts/{email}/granted-scope` (admin): what the account's consent grants
    from now on, `{"scope": "openid email ..."}` as Google's token answer spells it, or
    `{"scope": null}` for exactly what each sign-in asks for (the default)."""
    if not isinstance(body, dict) or set(body) != {"scope"}:
        return SignInAnswer(400, {"error": 'the body must be {"scope": "<scopes>" or null}'})
    scope = body["scope"]
    if scope is not None and (not isinstance(scope, str) or not scope.split()):
        return SignInAnswer(400, {"error": "'scope' must be space-separated scopes or null"})
    with store.lock:
        account = store.accounts.get(email)
        if account is None:
            return SignInAnswer(404, {"error": f"no account {email}"})
        account.granted_scope = " ".join(scope.split()) if scope is not None else None
    return SignInAnswer(200, {"email": email, "granted_scope": account.granted_scope})


def revoke(store: Store, value: str) -> SignInAnswer:
    if value and store.revoke(value):
        return SignInAnswer(200, {})
    return _token_error("invalid_token", "Token expired or revoked")


def userinfo(store: Store, authorization: str | None) -> SignInAnswer:
    try:
        email = store.authenticate(authorization)
    except errors.GoogleError:
        return SignInAnswer(
            401,
            {"error": "invalid_request", "error_description": "Invalid Credentials"},
        )
    with store.lock:
        account = store.accounts[email]
        sub = str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))
        return SignInAnswer(
            200,
            {
                "sub": sub,
                "name": account.name,
                "given_name": account.name.split(" ")[0],
                "email": email,
                "email_verified": True,
            },
        )
