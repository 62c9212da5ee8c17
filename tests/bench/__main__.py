"""`make bench`: every figure in one run, one table, written to tests/bench/RESULTS.md."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.bench import (
    caldav_calls,
    calls,
    dashboard,
    merge,
    propagation,
    quota,
    scale,
    seeds,
    webhook,
)
from tests.bench.harness import Table, machine

RESULTS = Path(__file__).with_name("RESULTS.md")
README = Path(__file__).parents[2] / "README.md"

FIGURES: list[tuple[str, Callable[[Table, Path], None]]] = [
    ("1. Webhook acknowledgement", webhook.measure),
    ("2. End-to-end propagation", propagation.measure),
    ("3. Provider calls per change", calls.measure),
    ("4. Scale", scale.measure),
    ("5. Dashboard", dashboard.measure),
    ("6. CalDAV requests per change", caldav_calls.measure),
    ("7. Writes saved by merging", merge.measure),
    ("8. Quota pacing", quota.measure),
    ("9. The seeds' targets", seeds.measure),
]


def main(argv: list[str]) -> int:
    logging.disable(logging.INFO)  # httpx and alembic chatter would bury the table
    wanted = set(argv)
    table = Table()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    timings: list[str] = []
    for name, measure in FIGURES:
        if wanted and name.split(".")[0] not in wanted:
            continue
        print(f"== {name} ...", flush=True)
        began = time.perf_counter()
        before = len(table.rows)
        try:
            with tempfile.TemporaryDirectory(prefix="calsync-bench-") as tmp:
                measure(table, Path(tmp))
        except Exception as exc:  # a broken figure is reported, the others still run
            traceback.print_exc()
            if len(table.rows) == before:
                table.missing(name, f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
        timings.append(f"{name.split('.')[0]}: {time.perf_counter() - began:.0f} s")
    total = time.perf_counter() - started
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = f"{when}, {total:.0f} s in all ({', '.join(timings)})"
    load = (load_before, os.getloadavg()[0])
    text = render(table, summary, load)
    print(text)
    if not wanted:  # only a run of every figure is "the latest table"
        RESULTS.write_text(with_soak(text))
        update_readme(table, summary, load)
        print(f"written to {RESULTS} and README.md's Performance section")
    return 0


def with_soak(text: str) -> str:
    """The new table, and `make soak`'s section of RESULTS.md as it was (its own figures)."""
    old = RESULTS.read_text() if RESULTS.exists() else ""
    start, end = old.find("<!-- soak -->"), old.find("<!-- /soak -->")
    if start < 0 or end < 0:
        return text
    return text.rstrip("\n") + "\n\n" + old[start : end + len("<!-- /soak -->")] + "\n"


def update_readme(table: Table, summary: str, load: tuple[float, float]) -> None:
    """README's Performance section shows the table of this run: from its table's header to
    the "Run on:" line after it."""
    text = README.read_text()
    start = text.index("| figure |", text.index("## Performance"))
    end = text.index("\n", text.index("Run on:", start))
    run_on = "; ".join(line.removeprefix("- ") for line in machine(load))
    section = f"{table.markdown()}\n\nRun on: {run_on}. {summary}."
    README.write_text(text[:start] + section + text[end:])


def render(table: Table, summary: str, load: tuple[float, float]) -> str:
    parts = [
        "# calsync benchmarks",
        "",
        f"`make bench`, {summary}.",
        "",
        table.markdown(),
        "",
        "Machine:",
        "",
        *machine(load),
        "",
        "Notes:",
        "",
        *[f"- {note}" for note in table.notes],
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
