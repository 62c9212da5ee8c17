"""How the accounts code signs a person in, in calsync's words: the provider's side of it (OAuth
endpoints, scopes, what a grant covers, a password checked by the server) lives in the
provider's own ``signin`` module, reached through the registry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from calsync_server.providers.credentials import StoredCredentials


class SignInUnavailable(Exception):
    """Sign-in cannot start: no OAuth client is configured (real Google, Microsoft)."""


class SignInRefused(Exception):
    """A sign-in cannot finish; the message is for the person (in the browser, the CLI, the
    dashboard). ``status`` is the HTTP status that says it: 400 the request, 401 the login,
    502 the provider's side."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class OAuthSignIn(Protocol):
    """A redirect sign-in (OAuth code flow with PKCE). What a started flow must remember (a
    PKCE verifier, MSAL's whole flow with its nonce) is opaque text the accounts code keeps on
    the server until the redirect comes back."""

    # The provider as the person knows it, in messages ("Google said ...").
    display_name: str
    # The host a redirect to this machine's loopback address is written with, where the
    # provider matches registered redirect URIs by name (None: as the request came).
    loopback_host: str | None

    def begin(self, redirect_uri: str, state: str, login_hint: str | None) -> tuple[str, str]:
        """The consent URL for ``state``, and the flow's state to keep on the server."""
        ...

    def finish(
        self, redirect_uri: str, flow_state: str, reply: Mapping[str, str]
    ) -> tuple[str, StoredCredentials]:
        """Redeem the redirect's ``reply`` (every query parameter it brought) with the kept
        ``flow_state``: the account's email (lower case) and its login."""
        ...

    def keep(
        self, fresh: StoredCredentials, previous: StoredCredentials | None
    ) -> StoredCredentials:
        """The login to store after a sign-in, given the one stored before (a
        re-authorisation): what the provider skipped the second time is kept."""
        ...


@runtime_checkable
class InstallsClient(Protocol):
    """A sign-in whose OAuth client is a file the person downloads (Google's
    client_secret.json), kept in CALSYNC_HOME."""

    client_file: str  # the OAuth client's file in CALSYNC_HOME, where one is installed

    def install_client(self, source: Path) -> str:
        """Keep a downloaded OAuth client in CALSYNC_HOME (0600); its client id.
        Raises ValueError when the file is not one."""
        ...
