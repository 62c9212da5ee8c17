"""Microsoft identity platform v2.0: discovery, authorize (auto consent), token with PKCE S256
and rotating refresh tokens, id_token and client_info as MSAL reads them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from calsync_server.emulators.common.api import SignInAnswer
from calsync_server.emulators.microsoft.store import AuthCode, Mailbox, Store

# Scopes MSAL adds itself; what the token is for is the rest.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
CODE_LIFETIME = timedelta(minutes=10)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _error(store: Store, error: str, code: int, description: str) -> SignInAnswer:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = store.now().strftime("%Y-%m-%d %H:%M:%SZ")
    return SignInAnswer(
        400,
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                f"Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def openid_configuration(root: str, tenant: str) -> dict[str, Any]:
    """`/{tenant}/v2.0/.well-known/openid-configuration`: the endpoints MSAL looks up."""
    base = f"{root}{tenant}"
    issuer_tenant = "{tenantid}" if tenant in ("common", "organizations", "consumers") else tenant
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{root}oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "oid", "tid"],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def authorize(store: Store, params: dict[str, str], self_url: str) -> SignInAnswer:
    """Consent is automatic for the account in `login_hint`, or the only one; otherwise a
    page lists the accounts to pick from."""
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
        return SignInAnswer(400, html="<h1>AADSTS50011</h1><p>Invalid redirect_uri.</p>")
    if not params.get("client_id"):
        return SignInAnswer(400, html="<h1>AADSTS900144</h1><p>client_id is required.</p>")

    def back(query: dict[str, str]) -> SignInAnswer:
        if "state" in params:
            query["state"] = params["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return SignInAnswer(302, location=redirect_uri + separator + urlencode(query))

    if params.get("response_type", "code") != "code":
        return back({"error": "unsupported_response_type", "error_description": "code only"})
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is not None and method != "S256":
        return back({"error": "invalid_request", "error_description": "AADSTS501491: S256 only."})
    with store.lock:
        mailboxes = list(store.mailboxes.values())
    hint = (params.get("login_hint") or "").lower()
    chosen = [m for m in mailboxes if m.email.lower() == hint] or (
        mailboxes if len(mailboxes) == 1 else []
    )
    if not chosen:
        links = "".join(
            f'<li><a href="{html.escape(self_url + "?" + urlencode(query))}">'
            f"{html.escape(m.email)}</a></li>"
            for m in mailboxes
            for query in [{**params, "login_hint": m.email}]
        )
        body = links or "<li>No accounts yet: create one with POST /emulator/accounts.</li>"
        return SignInAnswer(
            200, html=f"<!doctype html><title>Pick an account</title><ul>{body}</ul>"
        )
    code = store.new_auth_code(
        AuthCode(
            oid=chosen[0].oid,
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            scope=params.get("scope", ""),
            code_challenge=challenge,
            code_challenge_method=method,
            nonce=params.get("nonce"),
            expires_at=store.now() + CODE_LIFETIME,
        )
    )
    return back({"code": code, "session_state": str(uuid.uuid4())})


def _id_token(store: Store, mailbox: Mailbox, client_id: str, root: str, nonce: str | None) -> str:
    now = int(store.now().timestamp())
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": f"{root}{mailbox.tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": mailbox.name,
        "oid": mailbox.oid,
        "preferred_username": mailbox.email,
        "sub": _b64(hashlib.sha256(f"{mailbox.oid}|{client_id}".encode()).digest()),
        "tid": mailbox.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    if nonce:
        claims["nonce"] = nonce
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "calsync-emulator"}).encode())
    payload = _b64(json.dumps(claims).encode())
    # Signed with a key of this emulator alone: MSAL does not check id_token signatures.
    signature = hmac.new(b"calsync-graph-emulator", f"{header}.{payload}".encode(), "sha256")
    return f"{header}.{payload}.{_b64(signature.digest())}"


def _tokens(
    store: Store, oid: str, client_id: str, scope: str, root: str, nonce: str | None
) -> SignInAnswer:
    access, refresh = store.issue_tokens(oid)
    with store.lock:
        mailbox = store.mailboxes[oid]
    lifetime = int(store.config.access_token_lifetime_s)
    client_info = _b64(json.dumps({"uid": mailbox.oid, "utid": mailbox.tenant_id}).encode())
    return SignInAnswer(
        200,
        {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scope.split() if s not in RESERVED_SCOPES) or scope,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
            "refresh_token": refresh,
            "id_token": _id_token(store, mailbox, client_id, root, nonce),
            "client_info": client_info,
        },
    )


def _pkce_ok(code: AuthCode, verifier: str | None) -> bool:
    if code.code_challenge is None:
        return True
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    return hmac.compare_digest(_b64(digest), code.code_challenge)


def token(store: Store, form: dict[str, str], root: str) -> SignInAnswer:
    """`POST /{tenant}/oauth2/v2.0/token`: authorization_code or refresh_token."""
    grant = form.get("grant_type")
    client_id = form.get("client_id", "")
    if grant == "authorization_code":
        code = store.redeem_code(form.get("code", ""))
        if code is None:
            return _error(
                store, "invalid_grant", 70008, "The provided authorization code is expired or used."
            )
        if code.client_id != client_id:
            return _error(store, "invalid_grant", 700005, "The code was issued to another app.")
        if form.get("redirect_uri") != code.redirect_uri:
            return _error(store, "invalid_grant", 50148, "The redirect_uri does not match.")
        if not _pkce_ok(code, form.get("code_verifier")):
            return _error(
                store,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
            )
        scope = form.get("scope") or code.scope
        return _tokens(store, code.oid, client_id, scope, root, code.nonce)
    if grant == "refresh_token":
        refresh = form.get("refresh_token", "")
        oid = store.redeem_refresh_token(refresh)
        if oid is None:
            with store.lock:
                revoked = refresh in store.revoked_refresh_tokens
            if revoked:
                return _error(
                    store,
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth "
                    "token is needed.",
                )
            return _error(
                store,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity.",
            )
        return _tokens(store, oid, client_id, form.get("scope", ""), root, None)
    return _error(
        store, "unsupported_grant_type", 70003, f"The app requested an unsupported grant {grant}."
    )
