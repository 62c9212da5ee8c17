"""A Google provider that lets a test run another request at the one moment a race needs:
right after a calendar's feed came back (real HTTP, the real client library)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from calsync_server.accounts.vault import StoredCredentials
from calsync_server.providers.credentials import GoogleOAuth
from calsync_server.providers.google.credentials import to_google
from calsync_server.providers.google.provider import GoogleProvider
from calsync_server.providers.model import ChangeSet
from tests.support.world import FAST_RETRY


class Hook:
    """What to run (once) after `calendar`'s feed is read; `meanwhile` is None once it ran."""

    def __init__(self) -> None:
        self.calendar = ""
        self.meanwhile: Callable[[], None] | None = None

    def fire(self, calendar_id: str) -> None:
        if calendar_id == self.calendar and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()


class FeedThen(GoogleProvider):
    """The real provider; after reading the hook's calendar's changes it runs the hook once."""

    def __init__(self, credentials: StoredCredentials, root_url: str, hook: Hook) -> None:
        assert isinstance(credentials, GoogleOAuth)
        super().__init__(to_google(credentials, root_url), root_url=root_url, retry=FAST_RETRY)
        self._hook = hook

    def read_changes(
        self, calendar_id: str, *, cursor: str | None, window: tuple[datetime, datetime]
    ) -> ChangeSet:
        changes = super().read_changes(calendar_id, cursor=cursor, window=window)
        self._hook.fire(calendar_id)
        return changes
