"""The Graph emulator's mailboxes (work accounts, one tenant per domain) and their sign-in:
access and refresh tokens, authorization codes, revoked sessions."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.store.calendars import CalendarStore
from calsync_server.emulators.microsoft.store.model import AuthCode, IssuedToken, Mailbox, Resource
from calsync_server.emulators.microsoft.zones import UnknownZone, zone_info


class MailboxStore(CalendarStore):
    def create_mailbox(
        self, email: str, name: str | None, time_zone: str, calendars: list[Resource]
    ) -> tuple[Mailbox, str, str]:
        """A work account with its default calendar and `calendars` more; its first tokens."""
        try:
            zone_info(time_zone)
        except UnknownZone:
            raise errors.bad_request(f"Unknown time zone '{time_zone}'.") from None
        with self.lock:
            if email.lower() in self.by_email:
                raise errors.GraphError(409, "Conflict", f"Account {email} already exists.")
            # One tenant per domain, as in Entra ID: colleagues share a tenant id.
            domain = email.split("@")[1].lower()
            tenant = str(uuid.uuid5(uuid.NAMESPACE_DNS, domain))
            mailbox = Mailbox(str(uuid.uuid4()), tenant, email, name or email, time_zone)
            self.mailboxes[mailbox.oid] = mailbox
            self.by_email[email.lower()] = mailbox.oid
            default = self._new_calendar(mailbox, "Calendar", True, True, None)
            mailbox.default_calendar = default.id
            for spec in calendars:
                self._new_calendar(
                    mailbox,
                    str(spec.get("name") or "Calendar"),
                    False,
                    bool(spec.get("can_edit", True)),
                    spec.get("color"),
                )
            access, refresh = self.issue_tokens(mailbox.oid)
            return mailbox, access, refresh

    def mailbox_of(self, email: str) -> Mailbox:
        with self.lock:
            oid = self.by_email.get(email.lower())
            if oid is None:
                raise errors.item_not_found()
            return self.mailboxes[oid]

    def issue_tokens(self, oid: str) -> tuple[str, str]:
        """A new access token and a new refresh token (Entra hands out a fresh refresh token on
        every grant; the old one stays valid until its own expiry)."""
        with self.lock:
            now = self.now()
            access = "EwB" + secrets.token_urlsafe(64)
            self.access_tokens[access] = IssuedToken(
                oid, now + timedelta(seconds=self.config.access_token_lifetime_s)
            )
            refresh = "M.C5" + secrets.token_urlsafe(64)
            self.refresh_tokens[refresh] = IssuedToken(
                oid, now + timedelta(seconds=self.config.refresh_token_lifetime_s)
            )
            return access, refresh

    def redeem_refresh_token(self, token: str) -> str | None:
        """The account a refresh token speaks for, or None when unknown, expired or revoked."""
        with self.lock:
            issued = self.refresh_tokens.get(token)
            if issued is None or issued.oid not in self.mailboxes:
                return None
            if issued.expires_at <= self.now():
                del self.refresh_tokens[token]
                return None
            return issued.oid

    def revoke_sessions(self, oid: str) -> None:
        """revokeSignInSessions: every refresh token of the account dies (access tokens live
        on until they expire, as in Entra)."""
        with self.lock:
            for key in [k for k, v in self.refresh_tokens.items() if v.oid == oid]:
                del self.refresh_tokens[key]
                self.revoked_refresh_tokens.add(key)

    def refuse_login(self, oid: str) -> None:
        """A changed password or a revoked consent: every token of the account dies at once,
        access tokens included (Graph enforces this through continuous access evaluation)."""
        with self.lock:
            self.revoke_sessions(oid)
            for key in [k for k, v in self.access_tokens.items() if v.oid == oid]:
                del self.access_tokens[key]

    def authenticate(self, authorization: str | None) -> Mailbox:
        if not authorization:
            raise errors.unauthenticated()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthenticated("Invalid authentication token.")
        with self.lock:
            issued = self.access_tokens.get(token.strip())
            if issued is None or issued.oid not in self.mailboxes:
                raise errors.unauthenticated("Invalid authentication token.")
            if issued.expires_at <= self.now():
                raise errors.unauthenticated("Lifetime validation failed, the token is expired.")
            return self.mailboxes[issued.oid]

    def new_auth_code(self, code: AuthCode) -> str:
        with self.lock:
            value = "1.A" + secrets.token_urlsafe(48)
            self.auth_codes[value] = code
            return value

    def redeem_code(self, value: str) -> AuthCode | None:
        with self.lock:
            code = self.auth_codes.pop(value, None)
            if code is None or code.expires_at <= self.now():
                return None
            return code
