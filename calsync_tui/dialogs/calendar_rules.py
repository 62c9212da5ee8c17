"""The rules part of a calendar's settings form (domain.md "Rules the user chooses"): title
filters and tentative invitations as a source; working hours, already-invited and merged blocks
as a target. The server checks every rule when it is saved; this only turns fields into words."""

from __future__ import annotations

import re
from typing import Any, Literal

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, Label, Static

from shared.schemas import CalendarOut, WorkingHoursSetting

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# What the hours fields hold before any are set: a working week, greyed out until chosen.
DEFAULT_HOURS = WorkingHoursSetting(days=list(WEEKDAYS[:5]), start="09:00", end="17:00")
# A /regex/ runs to a slash that ends the field or comes before a comma: it may hold commas.
_REGEX = re.compile(r"/.*?/(?=\s*(?:,|$))")
PATTERN_HINT = "comma-separated words, or a /regex/; any case"


def split_patterns(text: str) -> list[str]:
    """The patterns typed in one field. Empty ones (a trailing comma) are dropped; a regex that
    never closes is kept whole, for the server to say what is wrong with it."""
    found: list[str] = []
    rest = text.strip()
    while rest:
        regex = _REGEX.match(rest) if rest.startswith("/") else None
        if regex is not None:
            token, rest = regex[0], rest[regex.end() :]
        else:
            token, _, rest = rest.partition(",")
        if token.strip():
            found.append(token.strip())
        rest = rest.strip().removeprefix(",").strip()
    return found


def joined_patterns(patterns: list[str]) -> str:
    return ", ".join(patterns)


def hours_text(hours: WorkingHoursSetting) -> str:
    """`mon-fri 09:00-17:00`, or the days listed when they are not one run."""
    numbers = sorted(WEEKDAYS.index(day) for day in hours.days if day in WEEKDAYS)
    run = bool(numbers) and numbers == list(range(numbers[0], numbers[-1] + 1))
    if run and len(numbers) > 2:
        days = f"{WEEKDAYS[numbers[0]]}-{WEEKDAYS[numbers[-1]]}"
    else:
        days = ",".join(WEEKDAYS[n] for n in numbers)
    return f"{days} {hours.start}-{hours.end}"


def rules_described(before: CalendarOut, after: CalendarOut) -> list[str]:
    """What a save changed among the rules, in a few words each."""
    said: list[str] = []
    if (before.title_include, before.title_exclude) != (after.title_include, after.title_exclude):
        said.append("title filters changed")
    if before.block_tentative != after.block_tentative:
        said.append(
            "tentative invitations block" if after.block_tentative else "tentative ones do not"
        )
    if before.working_hours != after.working_hours:
        hours = after.working_hours
        said.append(f"working hours {hours_text(hours)}" if hours else "no working hours")
    if before.skip_invited != after.skip_invited:
        said.append("no block where invited" if after.skip_invited else "blocks where invited")
    if before.merge_blocks != after.merge_blocks:
        said.append("blocks merged" if after.merge_blocks else "blocks not merged")
    return said


class SourceRules(Vertical):
    """As a source: which of its events block the others' time."""

    def __init__(self, calendar: CalendarOut) -> None:
        super().__init__(id="source-rules", classes="rules")
        self.calendar = calendar
        self.border_title = "Its events, as a source"

    def compose(self) -> ComposeResult:
        calendar = self.calendar
        with Horizontal(classes="setting"):
            yield Label("Only titles", classes="setting-label")
            yield Input(
                joined_patterns(calendar.title_include),
                placeholder="any title blocks",
                id="title-include",
                compact=True,
            )
        with Horizontal(classes="setting"):
            yield Label("Never titles", classes="setting-label")
            yield Input(
                joined_patterns(calendar.title_exclude),
                placeholder="none left out",
                id="title-exclude",
                compact=True,
            )
        yield Static(f"[dim]{PATTERN_HINT}[/dim]", classes="setting-hint")
        yield Checkbox(
            "Tentative and unanswered invitations block time",
            calendar.block_tentative,
            id="tentative",
            compact=True,
        )

    def changes(self) -> dict[str, Any]:
        """The source rules that differ from the calendar's, as CalendarPatch fields."""
        calendar = self.calendar
        fields: dict[str, Any] = {}
        for key, saved in (
            ("title_include", calendar.title_include),
            ("title_exclude", calendar.title_exclude),
        ):
            typed = self.query_one(f"#{key.replace('_', '-')}", Input).value
            # Compared as text: a saved pattern holding a comma stays whole unless edited.
            if typed.strip() != joined_patterns(saved):
                fields[key] = split_patterns(typed)
        tentative = self.query_one("#tentative", Checkbox).value
        if tentative != calendar.block_tentative:
            fields["block_tentative"] = tentative
        return fields


class TargetRules(Vertical):
    """As a target: where and how the others' blocks are written into it."""

    def __init__(self, calendar: CalendarOut) -> None:
        super().__init__(id="target-rules", classes="rules")
        self.calendar = calendar
        self.border_title = "The blocks it receives, as a target"

    def compose(self) -> ComposeResult:
        calendar = self.calendar
        hours = calendar.working_hours or DEFAULT_HOURS
        with Horizontal(classes="setting"):
            yield Checkbox(
                "Only in working hours:",
                calendar.working_hours is not None,
                id="hours-on",
                compact=True,
            )
            yield Label("from", classes="hours-word")
            yield Input(hours.start, id="hours-start", classes="hours-time", compact=True)
            yield Label("to", classes="hours-word")
            yield Input(hours.end, id="hours-end", classes="hours-time", compact=True)
        with Horizontal(id="hours-days", classes="setting"):
            for day in WEEKDAYS:
                yield Checkbox(day, day in hours.days, id=f"day-{day}", compact=True)
        yield Static(
            "[dim]its own time zone; outside them an event gives no block[/dim]",
            classes="setting-hint",
        )
        yield Checkbox(
            "No block for an event this calendar's account is invited to",
            calendar.skip_invited,
            id="skip-invited",
            compact=True,
        )
        yield Checkbox(
            "Merge overlapping or touching blocks into one",
            calendar.merge_blocks,
            id="merge",
            compact=True,
        )

    def on_mount(self) -> None:
        self.hours_chosen()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "hours-on":
            self.hours_chosen()

    def hours_chosen(self) -> None:
        """The days and times are greyed out while working hours are off."""
        off = not self.query_one("#hours-on", Checkbox).value
        for widget in (*self.query("#hours-days Checkbox"), *self.query(".hours-time")):
            widget.disabled = off

    def working_hours(self) -> WorkingHoursSetting | Literal["off"] | None:
        """What the fields say: hours as typed (the server checks them), "off", or None when
        that is what the calendar has already."""
        saved = self.calendar.working_hours
        if not self.query_one("#hours-on", Checkbox).value:
            return None if saved is None else "off"
        days = [d for d in WEEKDAYS if self.query_one(f"#day-{d}", Checkbox).value]
        start = self.query_one("#hours-start", Input).value.strip()
        end = self.query_one("#hours-end", Input).value.strip()
        typed = WorkingHoursSetting(days=days, start=start, end=end)
        return None if typed == saved else typed

    def changes(self) -> dict[str, Any]:
        """The target rules that differ from the calendar's, as CalendarPatch fields."""
        calendar = self.calendar
        fields: dict[str, Any] = {}
        if (hours := self.working_hours()) is not None:
            fields["working_hours"] = hours
        skip = self.query_one("#skip-invited", Checkbox).value
        if skip != calendar.skip_invited:
            fields["skip_invited"] = skip
        merge = self.query_one("#merge", Checkbox).value
        if merge != calendar.merge_blocks:
            fields["merge_blocks"] = merge
        return fields
