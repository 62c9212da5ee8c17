"""The week view's model and picture: the person's events and calsync's blocks of one week, laid
out one column per day with the calendars side by side, drawn as Rich text at any size."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from rich.text import Text

from shared.schemas import AccountOut, CalendarOut, Timeline

# One colour per calendar, in calendar order: distinct on dark and light themes.
PALETTE = ("#4f9dde", "#e0a526", "#59b36b", "#c061cb", "#e0675a", "#3fb8af", "#b0b0b0")
PROVIDER_NAMES = {"google": "Google", "microsoft": "Microsoft 365", "caldav": "CalDAV"}
# What each kind of item looks like: own events are solid, calsync's blocks hatched, an event
# that blocks nothing (free, declined) dotted.
OWN_FILL, BLOCK_FILL, FREE_FILL = "█", "░", "┊"
NOW_STYLE = "bold red"
GUTTER = 6  # "09:00 "
# The hours always shown; events outside them widen the range.
DAY_START, DAY_END = 7, 21
# Slot lengths tried, finest first, until the day fits the rows there are.
SLOT_MINUTES = (10, 15, 20, 30, 60)


@dataclass(frozen=True, slots=True)
class WeekItem:
    """One thing in one calendar's column: the person's event, or calsync's block."""

    key: str  # "event:12" or "block:34": unique in the week
    title: str
    calendar_id: int  # the event's calendar, or the block's target
    start: datetime | None  # timed items, in the viewer's zone
    end: datetime | None
    first_day: date  # the first and last day it touches (all-day: its own days)
    last_day: date
    all_day: bool
    block: bool
    free: bool = False  # an own event shown as free, or declined: it blocks nothing
    declined: bool = False
    source_calendar_id: int | None = None  # a block's source
    source_event_id: int | None = None
    event_id: int | None = None  # an own event's id (what the explain of issue 19 takes)

    def on(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def covers(self, day: date, slot_start: datetime, slot_end: datetime) -> bool:
        if self.all_day or self.start is None or self.end is None:
            return False
        return self.on(day) and self.start < slot_end and self.end > slot_start


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_items(timeline: Timeline, zone: tzinfo) -> list[WeekItem]:
    """The timeline's events and blocks as the week view places them, sorted by time."""
    items: list[WeekItem] = []
    for event in timeline.events:
        items.append(
            _item(
                f"event:{event.id}",
                event.summary or "(no title)",
                event.calendar_id,
                (event.start_at, event.end_at, event.start_day, event.end_day, event.all_day),
                zone,
                block=False,
                free=event.free or event.declined,
                declined=event.declined,
                event_id=event.id,
            )
        )
    for block in timeline.blocks:
        items.append(
            _item(
                f"block:{block.id}",
                block.summary,
                block.target_calendar_id,
                (block.start_at, block.end_at, block.start_day, block.end_day, block.all_day),
                zone,
                block=True,
                source_calendar_id=block.source_calendar_id,
                source_event_id=block.source_event_id,
            )
        )
    # By time, then own events before blocks, then calendar: never by row id, which says
    # only in what order the server happened to write.
    return sorted(
        items,
        key=lambda i: (
            i.first_day,
            not i.all_day,
            i.start or _EPOCH,
            i.block,
            i.calendar_id,
            i.title,
            i.key,
        ),
    )


_EPOCH = datetime(1970, 1, 1).astimezone()


def _item(
    key: str,
    title: str,
    calendar_id: int,
    when: tuple[datetime | None, datetime | None, date | None, date | None, bool],
    zone: tzinfo,
    *,
    block: bool,
    free: bool = False,
    declined: bool = False,
    source_calendar_id: int | None = None,
    source_event_id: int | None = None,
    event_id: int | None = None,
) -> WeekItem:
    start_at, end_at, start_day, end_day, all_day = when
    start: datetime | None = None
    end: datetime | None = None
    if all_day and start_day is not None and end_day is not None:
        first, last = start_day, max(start_day, end_day - timedelta(days=1))
    else:
        assert start_at is not None
        assert end_at is not None
        all_day = False
        start, end = start_at.astimezone(zone), end_at.astimezone(zone)
        first = start.date()
        last = (end - timedelta(microseconds=1)).date() if end > start else first
    return WeekItem(
        key,
        title,
        calendar_id,
        start,
        end,
        first,
        last,
        all_day,
        block,
        free=free,
        declined=declined,
        source_calendar_id=source_calendar_id,
        source_event_id=source_event_id,
        event_id=event_id,
    )


@dataclass(frozen=True, slots=True)
class Column:
    """A calendar as the week shows it: its colour and the words for it."""

    calendar: CalendarOut
    colour: str
    provider: str


def columns(calendars: list[CalendarOut], accounts: list[AccountOut]) -> list[Column]:
    """The calendars with sync on (or, with none on, all of them), in the server's order."""
    providers = {a.id: PROVIDER_NAMES.get(a.provider.value, a.provider.value) for a in accounts}
    shown = [c for c in calendars if c.sync_enabled] or list(calendars)
    return [
        Column(c, PALETTE[i % len(PALETTE)], providers.get(c.account_id, ""))
        for i, c in enumerate(shown)
    ]


@dataclass(frozen=True, slots=True)
class WeekPicture:
    """What to draw: the week from `monday`, its calendars and items, the viewer's now."""

    monday: date
    columns: list[Column]
    items: list[WeekItem]
    now: datetime  # in the viewer's zone
    selected: str | None = None
    # The items of each calendar on each day of the week: a cell looks only at its own
    # (looking through the week's every item for each cell made an arrow key slow).
    on_day: dict[tuple[int, date], list[WeekItem]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found: dict[tuple[int, date], list[WeekItem]] = defaultdict(list)
        for item in self.items:
            for day in self.days:
                if item.on(day):
                    found[(item.calendar_id, day)].append(item)
        object.__setattr__(self, "on_day", found)

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=i) for i in range(7)]

    def hours(self) -> tuple[int, int]:
        """The hours shown: the working day, widened to every timed item of the week."""
        first, last = DAY_START, DAY_END
        for item in self.items:
            if item.all_day or item.start is None or item.end is None:
                continue
            if item.first_day == item.last_day:
                first = min(first, item.start.hour)
                last = max(last, item.end.hour + (1 if item.end.minute else 0))
            else:  # across midnight: the whole day
                first, last = 0, 24
        return first, min(last, 24)


def slot_minutes(hours: int, rows: int) -> int:
    for minutes in SLOT_MINUTES:
        if hours * 60 // minutes <= rows:
            return minutes
    return SLOT_MINUTES[-1]


Hits = dict[tuple[int, int], str]  # (x, y) of a drawn cell -> the key of the item drawn there


def draw(picture: WeekPicture, width: int, height: int, hits: Hits | None = None) -> list[Text]:
    """The week as `height` lines of `width` cells: day headings, an all-day row, then the day
    in slots (as fine as the height allows), each day split into one column per calendar.
    `hits`, when given, is filled with where each item was drawn (a click selects it)."""
    lines: list[Text] = []
    day_width = max(2, (width - GUTTER) // 7)
    inner = day_width - 1  # one cell of each day is its left border
    widths = column_widths(inner, len(picture.columns))
    today = picture.now.date()
    found: Hits = {} if hits is None else hits

    def cells(line: Text, day: date, begin: datetime | None, end: datetime | None) -> None:
        is_now = begin is not None and day == today and begin <= picture.now < (end or begin)
        line.append("│", style="dim")
        x = line.cell_len
        drawn, keys = _cells(picture, day, begin, end, widths, inner, now=is_now)
        line.append_text(drawn)
        for width_, key in keys:
            if key is not None:
                for dx in range(width_):
                    found[(x + dx, len(lines))] = key
            x += width_

    heading = Text(" " * GUTTER)
    for day in picture.days:
        label = f"{day:%a %d}" if inner >= 6 else f"{day:%a}"[: max(1, inner)]
        style = "reverse bold" if day == today else ("dim" if day < today else "bold")
        heading.append("│", style="dim")
        heading.append(label[:inner].center(inner), style=style)
    lines.append(heading)

    all_day = Text("all d ", style="dim")
    for day in picture.days:
        cells(all_day, day, None, None)
    lines.append(all_day)

    first, last = picture.hours()
    rows = max(1, height - len(lines))
    minutes = slot_minutes(last - first, rows)
    shown = min(rows, (last - first) * 60 // minutes)
    top = first * 60 + _scroll(picture, first, last, shown * minutes)
    hidden_above = top > first * 60
    hidden_below = top + shown * minutes < last * 60
    zone = picture.now.tzinfo
    slot = timedelta(minutes=minutes)
    for row in range(shown):
        offset = timedelta(minutes=top + row * minutes)
        label = (datetime.min + offset).strftime("%H:%M") if offset.seconds % 3600 == 0 else ""
        if row == 0 and hidden_above:
            label = "  ▲  "  # earlier hours hold items: the view shows the later ones
        elif row == shown - 1 and hidden_below:
            label = "  ▼  "
        line = Text(f"{label:<5} ", style="dim")
        now_row = False
        for day in picture.days:
            begin = datetime.combine(day, time(0), zone) + offset
            now_row = now_row or (day == today and begin <= picture.now < begin + slot)
            cells(line, day, begin, begin + slot)
        if now_row:
            line = _mark_now(line, picture.now)
        lines.append(line)
    while len(lines) < height:
        lines.append(Text(""))
    return lines[:height]


def _scroll(picture: WeekPicture, first: int, last: int, span: int) -> int:
    """Minutes after `first` o'clock where the view starts when the day does not fit: the
    selected item in view, else now (this week), else the start of the working day."""
    room = (last - first) * 60 - span
    if room <= 0:
        return 0
    selected = next((i for i in picture.items if i.key == picture.selected), None)
    if selected is not None and selected.start is not None:
        focus = selected.start.hour * 60 + selected.start.minute - span // 4
    elif picture.monday <= picture.now.date() < picture.monday + timedelta(days=7):
        focus = picture.now.hour * 60 + picture.now.minute - span // 3
    else:
        focus = DAY_START * 60
    return max(0, min(room, focus - first * 60)) // 60 * 60


def _mark_now(line: Text, now: datetime) -> Text:
    marked = Text(f"{now:%H:%M}", style=NOW_STYLE)
    marked.append("▸", style=NOW_STYLE)
    return marked + line[GUTTER:]


def column_widths(inner: int, count: int) -> list[int]:
    """Each calendar's share of a day's `inner` cells: as even as can be, the first ones a
    cell wider; with more calendars than cells, the last ones get none."""
    if count == 0:
        return []
    if count > inner:
        return [1] * inner + [0] * (count - inner)
    base, extra = divmod(inner, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


def _cells(
    picture: WeekPicture,
    day: date,
    begin: datetime | None,
    end: datetime | None,
    widths: list[int],
    inner: int,
    *,
    now: bool = False,
) -> tuple[Text, list[tuple[int, str | None]]]:
    """One day's cells of one row (all-day when `begin` is None), a sub-column per calendar;
    with each sub-column's width and the key of the item drawn in it."""
    out = Text()
    keys: list[tuple[int, str | None]] = []
    for column, width in zip(picture.columns, widths, strict=True):
        if width:
            cell, key = _cell(picture, column, day, begin, end, width, now)
            out.append_text(cell)
            keys.append((width, key))
    out.append(" " * max(0, inner - out.cell_len))
    return out, keys


def _cell(
    picture: WeekPicture,
    column: Column,
    day: date,
    begin: datetime | None,
    end: datetime | None,
    width: int,
    now: bool,
) -> tuple[Text, str | None]:
    calendar_id = column.calendar.id
    if begin is None or end is None:
        here = [i for i in picture.on_day.get((calendar_id, day), ()) if i.all_day]
    else:
        here = [i for i in picture.on_day.get((calendar_id, day), ()) if i.covers(day, begin, end)]
    if not here:
        return Text(("─" if now else " ") * width, style=NOW_STYLE if now else ""), None
    # The selected item first, then the person's own busy events, then blocks, then free ones.
    here.sort(key=lambda i: (i.key != picture.selected, i.free, i.block))
    item = here[0]
    starts_here = (
        begin is None
        or item.start is None
        or item.start >= begin
        or (begin.date() == day and begin.time() == time(0))
    )
    colour = column.colour
    if item.block:
        fill, style = BLOCK_FILL, colour
        text_style = f"bold {colour}"
    elif item.free:
        fill, style = FREE_FILL, colour
        text_style = f"italic {colour}"
    else:
        fill, style = OWN_FILL, colour
        text_style = f"bold black on {colour}"
    if item.key == picture.selected:
        style = text_style = "bold reverse"
    # A block's title is always the same word: only the person's own events are labelled.
    label = item.title if starts_here and width >= 3 and not item.block else ""
    cell = Text(label[:width], style=text_style)
    cell.append(fill * (width - cell.cell_len), style=style)
    return cell, item.key


def legend(picture_columns: list[Column], width: int) -> Text:
    """Which colour is which calendar, and how events and blocks differ."""
    text = Text()
    text.append(OWN_FILL, style="white")
    text.append(" your event  ")
    text.append(BLOCK_FILL * 2, style="white")
    text.append(" calsync's block  ")
    text.append(FREE_FILL, style="white")
    text.append(" free/declined  ")
    text.append("─", style=NOW_STYLE)
    text.append(" now")
    for column in picture_columns:
        name = column.calendar.name
        if width < 120:
            name = name.split("@")[0][:14]
        piece = Text("  ")
        piece.append("■ ", style=column.colour)
        piece.append(name)
        if column.provider and width >= 120:
            piece.append(f" · {column.provider}", style="dim")
        text.append_text(piece)
    return text
