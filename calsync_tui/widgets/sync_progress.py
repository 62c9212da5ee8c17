"""A line per running sync under every screen: events read, then blocks written of how many."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.text import Text
from textual.widgets import Static

from shared.schemas import SyncProgressOut

BAR_WIDTH = 20
SHOWN = 3  # running syncs shown at once; more are counted


def progress_text(progress: Mapping[int, SyncProgressOut], name: Callable[[int], str]) -> Text:
    """What each running sync has done so far, one line each."""
    text = Text()
    for index, step in enumerate(list(progress.values())[:SHOWN]):
        if index:
            text.append("\n")
        text.append("⟳ ", style="cyan")
        text.append(f"Syncing {name(step.calendar_id)}: ", style="bold")
        if step.phase == "reading":
            text.append("reading changes…")
            continue
        text.append(f"{step.events_read} event{'' if step.events_read == 1 else 's'} read")
        if step.phase == "writing" and step.blocks_total:
            filled = BAR_WIDTH * step.blocks_done // step.blocks_total
            text.append(" · blocks ")
            text.append("█" * filled, style="cyan")
            text.append("░" * (BAR_WIDTH - filled), style="dim")
            text.append(f" {step.blocks_done} of {step.blocks_total} written")
    if len(progress) > SHOWN:
        text.append(f"\n  and {len(progress) - SHOWN} more", style="dim")
    return text


class SyncProgressLine(Static):
    """Hidden while nothing long is running."""

    DEFAULT_CSS = """
    SyncProgressLine { height: auto; padding: 0 1; display: none; }
    SyncProgressLine.running { display: block; }
    """

    def show(self, progress: Mapping[int, SyncProgressOut], name: Callable[[int], str]) -> None:
        self.set_class(bool(progress), "running")
        self.update(progress_text(progress, name) if progress else "")
