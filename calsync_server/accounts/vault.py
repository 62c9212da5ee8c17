"""OAuth credentials encrypted at rest with Fernet, the key kept 0600 in CALSYNC_HOME."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from google.oauth2.credentials import Credentials

from calsync_server.providers.google import SCOPES, token_uri

KEY_FILE = "credentials.key"


class StoredCredentials(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str | None
    refresh_token: str | None
    expiry: datetime | None = None
    client_id: str = "calsync"
    client_secret: str | None = None

    def __repr__(self) -> str:  # never let a token reach a log through a repr
        return f"StoredCredentials(client_id={self.client_id!r}, expiry={self.expiry!r})"

    def to_google(self, root_url: str) -> Credentials:
        # Built directly: from_authorized_user_info would force Google's own token_uri.
        expiry = self.expiry.replace(tzinfo=None) if self.expiry else None  # google-auth: naive UTC
        return Credentials(  # type: ignore[no-untyped-call]
            token=self.access_token,
            refresh_token=self.refresh_token,
            token_uri=token_uri(root_url),
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=list(SCOPES),
            expiry=expiry,
        )

    @classmethod
    def from_google(cls, credentials: Credentials, client_id: str) -> StoredCredentials:
        expiry = credentials.expiry
        return cls(
            access_token=credentials.token,
            refresh_token=credentials.refresh_token,
            expiry=expiry.replace(tzinfo=UTC) if expiry else None,
            client_id=client_id,
            client_secret=credentials.client_secret,
        )


class CredentialVault:
    """Seals and opens credentials; the key file is created on first use, readable by its owner."""

    def __init__(self, home: Path) -> None:
        self._fernet = Fernet(self._load_or_create_key(home / KEY_FILE))

    @staticmethod
    def _load_or_create_key(path: Path) -> bytes:
        if path.exists():
            return path.read_bytes().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key

    def seal(self, credentials: StoredCredentials) -> bytes:
        return self._fernet.encrypt(msgspec.json.encode(credentials))

    def open(self, blob: bytes) -> StoredCredentials:
        try:
            return msgspec.json.decode(self._fernet.decrypt(blob), type=StoredCredentials)
        except InvalidToken:
            raise ValueError("stored credentials cannot be decrypted with this key") from None
