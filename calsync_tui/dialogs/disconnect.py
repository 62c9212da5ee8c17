"""Asks before disconnecting an account, saying exactly what will be removed."""

from __future__ import annotations

from calsync_tui.dialogs.confirm import ConfirmDialog
from shared.schemas import AccountOut, CalendarOut


class DisconnectDialog(ConfirmDialog):
    def __init__(self, account: AccountOut, calendars: list[CalendarOut]) -> None:
        own = [c for c in calendars if c.account_id == account.id]
        sourced = sum(c.busy_blocks for c in own)
        names = ", ".join(c.name for c in own[:4]) + (" …" if len(own) > 4 else "")
        super().__init__(
            f"Disconnect {account.email}?",
            f"calsync will:\n"
            f" • stop the push channels of its {len(own)} calendars ({names or 'none'})\n"
            f" • remove the busy blocks its events made in your other calendars\n"
            f" • remove the {sourced:,} busy blocks calsync wrote into its own calendars\n"
            f" • revoke its sign-in and delete its calendars, events and sync logs here\n\n"
            "Your own events are not touched. You can connect the account again later.",
            "Disconnect",
            danger=True,
        )
