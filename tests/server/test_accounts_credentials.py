"""Stored logins as a tagged union: every kind seals and opens as itself, a login sealed before
the union (Google OAuth without a tag) still opens, and no secret shows in a repr."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from calsync_server.accounts.vault import KEY_FILE, CredentialVault
from calsync_server.providers.credentials import (
    CalDAVPassword,
    GoogleOAuth,
    MicrosoftTokenCache,
    StoredCredentials,
)

# Sealed by calsync's vault before the union (commit f33b7fc): its key and the blob it wrote
# for StoredCredentials(access_token="ya29.old-access", refresh_token="1//old-refresh",
# expiry=2026-03-01T12:00Z, client_id="old-client", client_secret="old-secret").
OLD_KEY = "jvGWnKlhVatuFN60SXWPVKbjnHrwHyH86rPM_SquJKE="
OLD_BLOB = (
    "gAAAAABrDWLHQt4tClZJZ8UiAzn21e_NGE1VHDVWMazlbJHeNyjMAlZDqVc4g1eIoQuyu6LC-5hzTqqKhXRNDgIHrbOU"
    "HllqRKSlK3bqkZtIF0JxiBpOBu_p9-7auSciPsarbVAaJwMEw1GxxLe-HKxlAPjM3x9U_OHJzxsSeMBKW1Ta0jqz5QLSuI"
    "jRf7CY-Ap5S4iCHzwtFyMo801v3fh4aTU0zRLcbP5PHEKbMbrS1KXUkxUBOQixuQYbTz3JpY0j4E3X7_ZDgz1uXOikkxrL"
    "hZFXhUrXHg=="
)

SECRETS = ("ya29.secret-access", "1//secret-refresh", "client-secret", "app-specific-pw", "AT-rt")

EVERY_KIND: list[StoredCredentials] = [
    GoogleOAuth(
        access_token="ya29.secret-access",
        refresh_token="1//secret-refresh",
        expiry=datetime(2026, 5, 1, 8, 30, tzinfo=UTC),
        client_id="my-client",
        client_secret="client-secret",
    ),
    CalDAVPassword(
        url="https://caldav.icloud.com/",
        username="ada@icloud.com",
        password="app-specific-pw",
        calendar_home="https://p42-caldav.icloud.com/123/calendars/",
    ),
    MicrosoftTokenCache(
        cache='{"RefreshToken": {"x": {"secret": "AT-rt"}}}', home_account_id="oid.tid"
    ),
]


def test_a_login_sealed_before_the_union_opens_as_google_oauth(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / KEY_FILE).write_text(OLD_KEY + "\n")

    opened = CredentialVault(home).open(OLD_BLOB.encode())

    assert opened == GoogleOAuth(
        access_token="ya29.old-access",
        refresh_token="1//old-refresh",
        expiry=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        client_id="old-client",
        client_secret="old-secret",
    )


@pytest.mark.parametrize("login", EVERY_KIND, ids=lambda c: type(c).__name__)
def test_every_kind_of_login_opens_as_itself(tmp_path: Path, login: StoredCredentials) -> None:
    vault = CredentialVault(tmp_path)
    sealed = vault.seal(login)

    opened = CredentialVault(tmp_path).open(sealed)

    assert type(opened) is type(login)
    assert opened == login
    for secret in SECRETS:
        assert secret.encode() not in sealed  # sealed, not merely encoded


@pytest.mark.parametrize("login", EVERY_KIND, ids=lambda c: type(c).__name__)
def test_no_secret_shows_in_a_repr(login: StoredCredentials) -> None:
    for text in (repr(login), str(login), f"{login!r} in a log line"):
        for secret in SECRETS:
            assert secret not in text


def test_a_login_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    vault = CredentialVault(tmp_path)
    fernet = Fernet((tmp_path / KEY_FILE).read_bytes().strip())
    blob = fernet.encrypt(b'{"kind": "exchange", "password": "x"}')

    with pytest.raises(ValueError, match="kind"):
        vault.open(blob)
