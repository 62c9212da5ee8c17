"""One calendar's settings as a form: sync, role, what its blocks show, all-day, whether its
blocks stay when sync is turned off, and its rules; one PATCH saves them, a refusal is shown in
the form with every choice kept, and cancel changes nothing."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, RadioButton, RadioSet, Static
from textual.worker import Worker, WorkerState

from calsync_tui.client import ApiError, CalsyncApi
from calsync_tui.dialogs.calendar_rules import SourceRules, TargetRules, rules_described
from shared.domain import BusyTitle, CalendarRole
from shared.schemas import CalendarOut, CalendarPatch

ROLES = (CalendarRole.BOTH, CalendarRole.SOURCE, CalendarRole.TARGET)
ROLE_MEANS = {
    CalendarRole.BOTH: "its events block time in the others, and theirs block time in it",
    CalendarRole.SOURCE: "its events block time in the others; it receives no blocks",
    CalendarRole.TARGET: "it receives the others' blocks; its own events block nothing",
}
TITLES = (BusyTitle.PRIVATE, BusyTitle.TITLE)
TITLE_LABEL = {BusyTitle.PRIVATE: '"Busy"', BusyTitle.TITLE: '"Busy - <event title>"'}


def _role_id(role: CalendarRole) -> str:
    return f"role-{role.value}"


def _title_id(title: BusyTitle) -> str:
    return f"title-{title.value}"


def described(before: CalendarOut, after: CalendarOut) -> str:
    """What a save changed, in a few words for a notification."""
    said: list[str] = []
    if before.sync_enabled != after.sync_enabled:
        said.append("sync on: syncing now" if after.sync_enabled else "sync off")
    if before.role != after.role:
        said.append(f"role: {after.role.value}")
    if before.busy_title != after.busy_title:
        said.append(f"its blocks say {TITLE_LABEL[after.busy_title]}")
    if before.include_all_day != after.include_all_day:
        said.append("all-day events block" if after.include_all_day else "all-day events do not")
    if before.keep_blocks_when_off != after.keep_blocks_when_off:
        said.append(
            "its blocks stay when sync is off"
            if after.keep_blocks_when_off
            else "its blocks go when sync is off"
        )
    said.extend(rules_described(before, after))
    return "; ".join(said) or "saved"


class Refusal(Static):
    """The server's refusal, last in the settings: shown, and whenever its wrapped sentence
    changes height, the settings scroll to its end so it is all in sight."""

    def on_resize(self) -> None:
        if self.display and self.parent is not None:
            self.call_after_refresh(self.scroll_visible, animate=False)


class CalendarSettingsDialog(ModalScreen[CalendarOut | None]):
    """Dismissed with the calendar as the server saved it, or None when nothing was saved."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, api: CalsyncApi, calendar: CalendarOut) -> None:
        super().__init__(classes="dialog-screen")
        self.api = api
        self.calendar = calendar
        self.saving = False

    def compose(self) -> ComposeResult:
        calendar = self.calendar
        with Vertical(classes="dialog", id="calendar-settings"):
            # Assembled, not markup: a calendar's name may hold "[" (it is the owner's text).
            yield Static(
                Content.assemble(
                    (f"Settings of {calendar.name}", "bold"), "  ", (calendar.account_email, "dim")
                ),
                classes="dialog-title",
            )
            # The settings scroll (at 80x24 they are taller than the screen), following the
            # focus; the buttons below them stay in sight.
            with VerticalScroll(id="settings-body", can_focus=False):
                yield Checkbox("Sync this calendar", calendar.sync_enabled, id="sync", compact=True)
                yield Static(
                    "[dim]on: calsync keeps its blocks; off removes the blocks it made[/dim]",
                    classes="setting-hint",
                )
                with Horizontal(classes="setting"):
                    yield Label("Role", classes="setting-label")
                    with RadioSet(id="role", compact=True):
                        for role in ROLES:
                            yield RadioButton(
                                role.value,
                                role == calendar.role,
                                id=_role_id(role),
                                # Google lets calsync read a read-only calendar, never write it.
                                disabled=calendar.read_only and role.is_target,
                            )
                yield Static("", id="role-means", classes="setting-hint")
                with Horizontal(classes="setting"):
                    yield Label("Blocks show", classes="setting-label")
                    with RadioSet(id="busy-title", compact=True):
                        for title in TITLES:
                            yield RadioButton(
                                TITLE_LABEL[title],
                                title == calendar.busy_title,
                                id=_title_id(title),
                            )
                yield Checkbox(
                    "All-day events block time too",
                    calendar.include_all_day,
                    id="all-day",
                    compact=True,
                )
                # After the ones above, so they keep their places in the tab order.
                yield Checkbox(
                    "Keep the blocks it holds when sync is turned off",
                    calendar.keep_blocks_when_off,
                    id="keep-blocks",
                    compact=True,
                )
                yield SourceRules(calendar)
                yield TargetRules(calendar)
                # Last, just above the buttons; shown, it is scrolled into sight.
                error = Refusal("", id="settings-error", classes="setting-error")
                error.display = False
                yield error
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Save (ctrl+s)", id="save", variant="primary")

    def on_mount(self) -> None:
        self._explain_role()
        self.query_one("#sync", Checkbox).focus()

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """The settings get the height the screen leaves once the title and the buttons are
        in (in CSS a scroll's height cannot follow both its content and the screen): on a
        small screen they scroll, and the buttons never leave it."""
        dialog = self.query_one("#calendar-settings")
        body = self.query_one("#settings-body")
        taken = dialog.styles.gutter.height + sum(
            child.outer_size.height + child.styles.margin.top + child.styles.margin.bottom
            for child in dialog.children
            if child is not body and child.display
        )
        body.styles.max_height = max(3, self.size.height * 9 // 10 - taken)

    # -- what the form says -------------------------------------------------------------------

    def chosen_role(self) -> CalendarRole:
        pressed = self.query_one("#role", RadioSet).pressed_button
        return next(
            (r for r in ROLES if pressed is not None and pressed.id == _role_id(r)),
            self.calendar.role,
        )

    def chosen_title(self) -> BusyTitle:
        pressed = self.query_one("#busy-title", RadioSet).pressed_button
        return next(
            (t for t in TITLES if pressed is not None and pressed.id == _title_id(t)),
            self.calendar.busy_title,
        )

    def patch(self) -> CalendarPatch:
        """Only what differs from the calendar as it was: one PATCH, nothing else touched."""
        calendar = self.calendar
        sync = self.query_one("#sync", Checkbox).value
        all_day = self.query_one("#all-day", Checkbox).value
        keep = self.query_one("#keep-blocks", Checkbox).value
        role, title = self.chosen_role(), self.chosen_title()
        return CalendarPatch(
            sync_enabled=sync if sync != calendar.sync_enabled else None,
            role=role if role != calendar.role else None,
            busy_title=title if title != calendar.busy_title else None,
            include_all_day=all_day if all_day != calendar.include_all_day else None,
            keep_blocks_when_off=keep if keep != calendar.keep_blocks_when_off else None,
            **self.query_one(SourceRules).changes(),
            **self.query_one(TargetRules).changes(),
        )

    def _explain_role(self) -> None:
        role = self.chosen_role()
        text = f"[dim]{ROLE_MEANS[role]}"
        if self.calendar.read_only:
            text += " (read-only at Google: it can only be a source)"
        self.query_one("#role-means", Static).update(text + "[/dim]")
        # A rule of a part the calendar does not play is kept, greyed out, until it does.
        self.query_one(SourceRules).disabled = not role.is_source
        self.query_one(TargetRules).disabled = not role.is_target or self.calendar.read_only

    @on(RadioSet.Changed, "#role")
    def role_changed(self) -> None:
        self._explain_role()

    # -- saving -------------------------------------------------------------------------------

    @on(Button.Pressed, "#save")
    def save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "save")
        self.dismiss(None)

    def action_save(self) -> None:
        if self.saving:
            return
        patch = self.patch()
        if patch == CalendarPatch():
            self.dismiss(None)
            return
        self._busy(True)
        self.save(patch)

    def _busy(self, saving: bool) -> None:
        self.saving = saving
        save = self.query_one("#save", Button)
        save.disabled = saving
        save.label = "Saving…" if saving else "Save (ctrl+s)"
        if saving:
            self.query_one("#settings-error", Static).display = False

    @work(exclusive=True, group="save", exit_on_error=False)
    async def save(self, patch: CalendarPatch) -> None:
        saved = await self.api.change_calendar(self.calendar.id, patch)
        self.dismiss(saved)

    @on(Worker.StateChanged)
    def save_failed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        message = str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
        shown = self.query_one("#settings-error", Static)
        shown.update(
            Content.assemble(
                ("The server did not save this: ", "bold red"),
                message,
                ("\nYour choices are still here: change them and save again, or cancel.", "dim"),
            )
        )
        shown.display = True
        self.query_one("#settings-body", VerticalScroll).scroll_end(animate=False)
        self._busy(False)
