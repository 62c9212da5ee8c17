"""Microsoft 365 and Outlook.com through Microsoft Graph v1.0: client, mapping, delta, blocks,
push and sign-in."""

from calsync_server.providers.microsoft.mapping import MARK_ID
from calsync_server.providers.microsoft.provider import CAPABILITIES, MicrosoftProvider
from calsync_server.providers.microsoft.push import parse_notification

__all__ = ["CAPABILITIES", "MARK_ID", "MicrosoftProvider", "parse_notification"]
