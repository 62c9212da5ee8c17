"""How the accounts code signs a person in, in calsync's words: the provider's side of it (OAuth
endpoints, scopes, what a grant covers, a password checked by the server) lives in the
provider's own ``signin`` module, reached through the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from calsync_server.providers.credentials import StoredCredentials


class SignInUnavailable(Exception):
    """Sign-in cannot start: no OAuth client is configured (real Google)."""


class SignInRefused(Exception):
    """A sign-in cannot finish; the message is for the person (in the browser, the CLI, the
    dashboard). ``status`` is the HTTP status that says it: 400 the request, 401 the login,
    502 the provider's side."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class OAuthSignIn(Protocol):
    """A redirect sign-in (OAuth code flow with PKCE)."""

    client_file: str  # the OAuth client's file in CALSYNC_HOME, where one is installed

    def install_client(self, source: Path) -> str:
        """Keep a downloaded OAuth client in CALSYNC_HOME (0600); its client id.
        Raises ValueError when the file is not one."""
        ...

    def begin(self, redirect_uri: str, state: str, login_hint: str | None) -> tuple[str, str]:
        """The consent URL for ``state``, and the PKCE verifier to keep on the server."""
        ...

    def finish(self, redirect_uri: str, verifier: str, code: str) -> tuple[str, StoredCredentials]:
        """Exchange the code: the account's email (lower case) and its login."""
        ...

    def keep(
        self, fresh: StoredCredentials, previous: StoredCredentials | None
    ) -> StoredCredentials:
        """The login to store after a sign-in, given the one stored before (a
        re-authorisation): what the provider skipped the second time is kept."""
        ...
