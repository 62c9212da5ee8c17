"""Stored logins (OAuth tokens, CalDAV passwords, token caches) encrypted at rest with Fernet,
the key kept 0600 in CALSYNC_HOME."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from calsync_server.providers import credentials as shapes
from calsync_server.providers.credentials import GoogleOAuth, StoredCredentials

__all__ = ["CredentialVault", "GoogleOAuth", "StoredCredentials"]

KEY_FILE = "credentials.key"


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
        return self._fernet.encrypt(shapes.encode(credentials))

    def open(self, blob: bytes) -> StoredCredentials:
        try:
            plain = self._fernet.decrypt(blob)
        except InvalidToken:
            raise ValueError("stored credentials cannot be decrypted with this key") from None
        return shapes.decode(plain)
