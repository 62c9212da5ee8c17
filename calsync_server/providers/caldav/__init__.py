"""CalDAV (iCloud, Fastmail, Nextcloud, any RFC 4791 server): polled by design, blocks by href."""

from calsync_server.providers.caldav.provider import CAPABILITIES, CalDAVProvider

ICLOUD_URL = "https://caldav.icloud.com/"

__all__ = ["CAPABILITIES", "ICLOUD_URL", "CalDAVProvider"]
