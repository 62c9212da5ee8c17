"""The Google emulator's accounts and their credentials: refresh and access tokens, codes."""

from __future__ import annotations

import secrets
import time
from typing import Any

from calsync_server.emulators.google import errors
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.store.calendars import CalendarStore
from calsync_server.emulators.google.store.model import (
    AccessToken,
    Account,
    AuthCode,
    Calendar,
    base32hex_id,
)


class AccountStore(CalendarStore):
    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config)
        self.accounts: dict[str, Account] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.auth_codes: dict[str, AuthCode] = {}

    def create_account(
        self,
        email: str,
        name: str | None,
        time_zone: str,
        calendars: list[dict[str, Any]],
    ) -> tuple[Account, str, str, list[Calendar]]:
        with self.lock:
            if email in self.accounts:
                raise errors.GoogleError(409, "duplicate", f"Account {email} already exists.")
            account = Account(email, name or email.split("@")[0], time_zone)
            self.accounts[email] = account
            primary = self.calendars.get(email)
            if primary is None:
                primary = self._new_calendar(email, email, time_zone)
            primary.acl[email] = "owner"
            made = [primary]
            for spec in calendars:
                role = spec.get("access_role") or "owner"
                calendar_id = spec.get("id") or f"{base32hex_id()}@group.calendar.google.com"
                calendar = self.calendars.get(calendar_id)
                if calendar is None:
                    calendar = self._new_calendar(
                        calendar_id, spec["summary"], spec.get("time_zone") or time_zone
                    )
                calendar.acl[email] = role
                made.append(calendar)
            refresh = self._new_refresh_token(email)
            access = self.issue_access_token(email, refresh)
            return account, access, refresh, made

    def _new_refresh_token(self, email: str) -> str:
        token = "1//" + secrets.token_urlsafe(48)
        self.refresh_tokens[token] = email
        return token

    def issue_access_token(self, email: str, refresh_token: str | None) -> str:
        with self.lock:
            token = "ya29." + secrets.token_urlsafe(64)
            self.access_tokens[token] = AccessToken(
                email, time.monotonic() + self.config.access_token_lifetime_s, refresh_token
            )
            return token

    def authenticate(self, authorization: str | None) -> str:
        """The account an `Authorization: Bearer` header speaks for, or Google's 401."""
        if not authorization:
            raise errors.login_required()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.invalid_credentials()
        with self.lock:
            entry = self.access_tokens.get(token.strip())
            if entry is None or entry.email not in self.accounts:
                raise errors.invalid_credentials()
            if entry.expires_at <= time.monotonic():
                del self.access_tokens[token.strip()]
                raise errors.invalid_credentials()
            return entry.email

    def new_auth_code(self, code: AuthCode) -> str:
        with self.lock:
            value = "4/" + secrets.token_urlsafe(32)
            self.auth_codes[value] = code
            return value

    def redeem_code(self, code: str) -> AuthCode | None:
        with self.lock:
            return self.auth_codes.pop(code, None)

    def new_grant(self, email: str) -> tuple[str, str]:
        """A fresh refresh token and an access token tied to it, for the code exchange."""
        with self.lock:
            refresh = self._new_refresh_token(email)
            return self.issue_access_token(email, refresh), refresh

    def revoke(self, token: str) -> bool:
        with self.lock:
            if token in self.refresh_tokens:
                del self.refresh_tokens[token]
                # Revoking a grant kills every access token minted from it, as Google does.
                for key in [k for k, v in self.access_tokens.items() if v.refresh_token == token]:
                    del self.access_tokens[key]
                return True
            return self.access_tokens.pop(token, None) is not None
