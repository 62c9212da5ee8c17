"""Week: the person's own events and calsync's blocks of one week as a picture, one column per
day with the calendars side by side; move through weeks, select an event to see its details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from calsync_tui.screens.base import CalsyncScreen
from calsync_tui.week import Column, WeekItem, WeekPicture, columns, legend, monday_of, week_items
from calsync_tui.widgets.week_grid import WeekGrid
from shared.schemas import AccountOut, CalendarOut, ExplainEvent, Timeline

HELP = "←/→ or [/] weeks · t this week · ↑/↓ or a click selects an event · esc none"


@dataclass(frozen=True, slots=True)
class WeekData:
    """One load: the week's timeline and the calendars and accounts it names."""

    monday: date
    timeline: Timeline
    calendars: list[CalendarOut]
    accounts: list[AccountOut]


class WeekScreen(CalsyncScreen):
    MODE = "week"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "week(-1)", "Last week"),
        Binding("right", "week(1)", "Next week"),
        Binding("left_square_bracket", "week(-1)", "Last week", show=False),
        Binding("right_square_bracket", "week(1)", "Next week", show=False),
        Binding("t", "this_week", "This week"),
        Binding("down", "select(1)", "Next event", show=False),
        Binding("up", "select(-1)", "Previous event", show=False),
        Binding("escape", "select(0)", "No selection", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.monday: date | None = None  # None until the first load: this week then
        self.data: WeekData | None = None
        self.items: list[WeekItem] = []
        self.cols: list[Column] = []
        self.selected: str | None = None
        self.loads = 0  # finished loads (tests wait on it)
        # The server's explain of the selected item's event (issue 19), once it answered.
        self.explained: ExplainEvent | None = None

    def body(self) -> ComposeResult:
        yield Static("", id="week-title")
        yield WeekGrid(id="week-grid")
        yield Static("", id="week-legend", classes="help")
        # The selected event's details: as many lines as they take, up to a part of the
        # screen (at 80x24 an explain with every calendar's verdict is longer), then scrolled.
        # Not focusable: ↑/↓ select events (the screen's keys), the wheel scrolls it.
        with VerticalScroll(id="week-detail", can_focus=False):
            yield Static(Text(HELP, style="dim"), id="week-detail-text")

    # -- data ---------------------------------------------------------------------------------

    def _local_now(self) -> datetime:
        return self.host.now().astimezone(self.host.zone)

    def reload(self) -> None:
        self.load(self.monday or monday_of(self._local_now().date()))

    @work(exclusive=True, group="week", exit_on_error=False)
    async def load(self, monday: date) -> None:
        zone = self.host.zone
        start = datetime.combine(monday, time(0), zone)
        end = datetime.combine(monday + timedelta(days=7), time(0), zone)
        timeline = await self.host.api.timeline(start, end)
        calendars = await self.host.api.calendars()
        accounts = await self.host.api.accounts()
        self.host.remember_calendars(calendars)
        self.monday = monday
        self.data = WeekData(monday, timeline, calendars, accounts)
        self.items = week_items(timeline, zone)
        self.cols = columns(calendars, accounts)
        if self.selected not in {i.key for i in self.items}:
            self.selected = None
        self.loads += 1
        self.redraw()

    # -- drawing ------------------------------------------------------------------------------

    def redraw(self) -> None:
        if self.data is None or self.monday is None:
            return
        now = self._local_now()
        picture = WeekPicture(self.monday, self.cols, self.items, now, self.selected)
        self.query_one(WeekGrid).show(picture)
        sunday = self.monday + timedelta(days=6)
        title = Text(f" Week of {self.monday:%a %d %b} to {sunday:%a %d %b %Y}", style="bold")
        if monday_of(now.date()) == self.monday:
            title.append("  this week", style="green")
        own = sum(1 for i in self.items if not i.block)
        blocks = len(self.items) - own
        title.append(f"   {own} events, {blocks} blocks", style="dim")
        if self.monday <= now.date() - timedelta(days=1):
            # The sync window starts today: earlier days hold nothing calsync read.
            title.append("   (calsync reads your calendars from today on)", style="dim italic")
        if self.data.timeline.truncated:
            title.append("  (more than shown)", style="yellow")
        self.query_one("#week-title", Static).update(title)
        self.query_one("#week-legend", Static).update(legend(self.cols, self.size.width))
        self.query_one("#week-detail-text", Static).update(self.detail())

    def on_resize(self) -> None:
        self.redraw()

    def detail(self) -> Text:
        """What the selected item is; with nothing selected, the keys."""
        item = next((i for i in self.items if i.key == self.selected), None)
        if item is None:
            return Text(HELP, style="dim")
        text = Text()
        text.append(item.title, style="bold")
        text.append(f"  {self._calendar_words(item.calendar_id)}  ", style="dim")
        text.append(_when(item))
        text.append("\n")
        text.append_text(self.why(item))
        return text

    def why(self, item: WeekItem) -> Text:
        """Why the item is there, or what it leads to: the server's explain (issue 19: the
        rule that decided, and the verdict in each other calendar) once it has answered, what
        the week itself shows until then."""
        event_id = item.event_id if not item.block else item.source_event_id
        explained = self.explained
        if explained is not None and explained.event_id == event_id:
            source = self._calendar_words(explained.calendar_id)
            return _explained(item, explained, source)
        if item.block:
            source = self._calendar_words(item.source_calendar_id)
            mirrored = next(
                (
                    i
                    for i in self.items
                    if i.event_id is not None and i.event_id == item.source_event_id
                ),
                None,
            )
            what = f'"{mirrored.title}"' if mirrored else "an event"
            return Text(f"calsync's busy block: {what} in {source} keeps this time", "cyan")
        blocks = [i for i in self.items if i.block and i.source_event_id == item.event_id]
        if item.declined:
            return Text("Your event, declined: it blocks nothing", "italic")
        if item.free:
            return Text("Your event, shown as free: it blocks nothing", "italic")
        if blocks:
            where = sorted({self._calendar_words(b.calendar_id) for b in blocks})
            return Text(f"Your event: blocked in {', '.join(where)}", "green")
        return Text("Your event: no block for it this week (a source's rules decide)", "dim")

    def _calendar_words(self, calendar_id: int | None) -> str:
        column = next((c for c in self.cols if c.calendar.id == calendar_id), None)
        if column is None:
            return self.host.calendar_name(calendar_id) if calendar_id is not None else "?"
        provider = f" ({column.provider})" if column.provider else ""
        return f"{column.calendar.name}{provider}"

    # -- keys ---------------------------------------------------------------------------------

    def action_week(self, step: int) -> None:
        base = self.monday or monday_of(self._local_now().date())
        self.selected = None
        self.load(base + timedelta(days=7 * step))

    def action_this_week(self) -> None:
        self.selected = None
        self.load(monday_of(self._local_now().date()))

    def action_select(self, step: int) -> None:
        keys = [i.key for i in self.items]
        if step == 0 or not keys:
            self.selected = None
        elif self.selected not in keys:
            self.selected = keys[0] if step > 0 else keys[-1]
        else:
            index = keys.index(self.selected) + step
            self.selected = keys[index % len(keys)]
        self.choose(self.selected)

    def on_week_grid_chosen(self, message: WeekGrid.Chosen) -> None:
        self.choose(message.key)

    def choose(self, key: str | None) -> None:
        """Select the item (None: nothing) and ask why it is there."""
        self.selected = key
        self.redraw()
        item = next((i for i in self.items if i.key == key), None)
        event_id = None if item is None else (item.source_event_id if item.block else item.event_id)
        if event_id is not None:
            self.explain(event_id)

    @work(exclusive=True, group="explain", exit_on_error=False)
    async def explain(self, event_id: int) -> None:
        """Ask the server why the event blocks or not; shown if it is still selected."""
        answer = await self.host.api.explain(event_id)
        self.explained = next((e for e in answer.events if e.event_id == event_id), None)
        self.redraw()


def _when(item: WeekItem) -> str:
    if item.all_day:
        if item.first_day == item.last_day:
            return f"{item.first_day:%a %d %b}, all day"
        return f"{item.first_day:%a %d %b} to {item.last_day:%a %d %b}, all day"
    assert item.start is not None
    assert item.end is not None
    end = f"{item.end:%H:%M}" if item.end.date() == item.start.date() else f"{item.end:%a %H:%M}"
    return f"{item.start:%a %d %b %H:%M}-{end}"


def _explained(item: WeekItem, explained: ExplainEvent, source: str) -> Text:
    """The explain in two short lines. An event: its verdict, then each other calendar (✓ a
    block there, ✗ and why not). A block: the event it keeps, then why it stands here."""
    text = Text()
    if item.block:
        title = explained.title or "(no title)"
        text.append(f'calsync\'s busy block: "{title}" in {source} keeps this time', "cyan")
        here = next((t for t in explained.targets if t.calendar_id == item.calendar_id), None)
        if here is not None:
            text.append("\n")
            text.append(f"Here: {here.reason}", style="dim")
        return text
    blocks = explained.verdict == "blocks"
    text.append("Your event: ", style="green" if blocks else "italic")
    text.append(explained.reason, style="green" if blocks else "italic")
    if explained.targets:
        text.append("\n")
        for index, target in enumerate(explained.targets):
            if index:
                text.append(" · ", style="dim")
            if target.verdict == "blocks":
                text.append(f"✓ {target.calendar_name}", style="green")
            else:
                text.append(f"✗ {target.calendar_name}", style="dim")
                if target.verdict != explained.verdict:
                    text.append(f" ({target.reason})", style="dim")
    return text
