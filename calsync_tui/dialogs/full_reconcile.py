"""Asks before a full reconcile of every synced calendar (it costs many provider calls)."""

from __future__ import annotations

from calsync_tui.dialogs.confirm import ConfirmDialog


class FullReconcileDialog(ConfirmDialog):
    def __init__(self, calendars: int) -> None:
        plural = "s" if calendars != 1 else ""
        super().__init__(
            "Full reconcile",
            f"Fetch every event of your {calendars} synced calendar{plural} afresh and check "
            "every busy block calsync made: missing ones are created, wrong ones fixed and "
            "orphans deleted.\n\nThis reads whole calendars from Google, so it takes longer "
            "than a normal sync. Blocks you moved or deleted by hand are left alone.",
            "Reconcile",
        )
