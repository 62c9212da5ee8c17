"""Asks before a full reconcile of every synced calendar (it costs many provider calls), showing
first what it would change now: the server's plan of a full pass (GET /api/v1/plan?full=true),
its counts and first changes per target; the yes waits until the plan is on screen."""

from __future__ import annotations

from datetime import tzinfo

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Button, Static

from calsync_tui.client import ApiError, CalsyncApi
from calsync_tui.dialogs.confirm import ConfirmDialog
from calsync_tui.formatting import when
from shared.schemas import PlanPreview

# Changes listed in the question (the counts are whole): the dialog stays inside 80x24.
SHOWN_CHANGES = 4
SIGN = {"create": "+", "update": "~", "delete": "-"}


def _counted(creates: int, updates: int, deletes: int, held: int = 0) -> str:
    parts = [f"{creates} new", f"{updates} fixed", f"{deletes} deleted"]
    if held:
        parts.append(f"{held} held")
    return ", ".join(parts)


def plan_text(plan: PlanPreview, zone: tzinfo) -> str:
    """The plan in a few lines: the whole counts, then per target its counts and its first
    changes (a sign, the block's title and time, the reason), as many as fit."""
    if not plan.targets:
        lines = ["Nothing would change now: every busy block is as it should be."]
    else:
        lines = [
            "It would change now: "
            + _counted(plan.creates, plan.updates, plan.deletes, plan.held)
            + " busy blocks."
        ]
    left = SHOWN_CHANGES
    for target in plan.targets:
        counts = _counted(target.creates, target.updates, target.deletes, target.held)
        lines.append(f"{target.calendar_name}: {counts}")
        for change in target.changes[: max(left, 0)]:
            start = change.start_at.astimezone(zone) if change.start_at else None
            sign = SIGN.get(change.action, "?")
            lines.append(f'  {sign} "{change.summary}" {when(start)}: {change.reason}')
        left -= len(target.changes)
    shown = min(SHOWN_CHANGES, sum(len(t.changes) for t in plan.targets))
    more = plan.creates + plan.updates + plan.deletes + plan.held - shown
    if plan.targets and more > 0:
        lines.append(f"  ... and {more} more (calsync sync --full --dry-run lists them)")
    lines += [f"Note: {note}" for note in plan.notes]
    return "\n".join(lines)


class FullReconcileDialog(ConfirmDialog):
    def __init__(self, api: CalsyncApi, calendars: int, zone: tzinfo) -> None:
        plural = "s" if calendars != 1 else ""
        super().__init__(
            "Full reconcile",
            f"Fetch every event of your {calendars} synced calendar{plural} afresh and check "
            "every busy block calsync made. Blocks you moved or deleted by hand are left alone.",
            "Reconcile",
        )
        self.api = api
        self.zone = zone
        # Answered: the plan (or why it could not be read) is on screen, the yes is open.
        self.answered = False

    def details(self) -> ComposeResult:
        yield Static(
            "Reading what it would change now...", id="full-reconcile-plan", classes="dialog-body"
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#yes", Button).disabled = True
        self.read_plan()

    @work(exclusive=True, group="full-reconcile-plan", exit_on_error=False)
    async def read_plan(self) -> None:
        try:
            text = plan_text(await self.api.plan(full=True), self.zone)
        except ApiError as exc:
            text = f"What it would change could not be read: {exc}"
        # Plain text, not markup: titles and calendar names are the user's.
        self.query_one("#full-reconcile-plan", Static).update(Content(text))
        self.query_one("#yes", Button).disabled = False
        self.answered = True

    def action_answer(self, yes: bool) -> None:
        if yes and not self.answered:
            return  # the question is not whole until its plan is shown
        super().action_answer(yes)
