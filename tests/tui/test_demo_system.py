"""System: `calsync demo` in a real terminal (tmux) opens on the week of one person's three
providers (Microsoft 365 work, Google personal, CalDAV family) with calsync's blocks, shows
changes arriving from each (pushed by Google and Graph, polled from Radicale), the Channels
screen naming each provider's push, and `q` ends it with exit code 0, leaving no process
behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.waiting import wait_until

TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    # `calsync demo` runs in a process of its own, on the real clock whatever this one's says.
    pytest.mark.real_clock,
]


def _calsync() -> list[str]:
    script = Path(sys.executable).with_name("calsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "calsync_tui.cli"]


class Terminal:
    """A tmux server of this test's own, with one 120x36 window running one command."""

    def __init__(self, command: list[str], done: Path) -> None:
        assert TMUX is not None
        # -u: UTF-8 whatever the test runner's locale, or tmux draws "●" and "█" as "_".
        self.base = [TMUX, "-u", "-L", f"calsync-test-{uuid.uuid4().hex[:8]}"]
        # COLUMNS/LINES from the test runner would override the window's real size.
        line = "env -u COLUMNS -u LINES " + " ".join(command) + f"; echo $? > {done}; sleep 600"
        env = ["-e", "LANG=C.UTF-8", "-e", "TERM=xterm-256color"]
        if "PYTHONPATH" in os.environ:
            env += ["-e", f"PYTHONPATH={os.environ['PYTHONPATH']}"]
        subprocess.run(
            [*self.base, "new-session", "-d", *env, "-x", "120", "-y", "36", line], check=True
        )

    def screen(self) -> str:
        out = subprocess.run(
            [*self.base, "capture-pane", "-p"], capture_output=True, text=True, check=False
        )
        return out.stdout

    def press(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def pane_pid(self) -> int:
        out = subprocess.run(
            [*self.base, "list-panes", "-F", "#{pane_pid}"], capture_output=True, text=True
        )
        return int(out.stdout.split()[0])

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_calsync_demo_shows_three_providers_changes_arriving_and_quits_cleanly(
    tmp_path: Path,
) -> None:
    done = tmp_path / "exit-code"
    terminal = Terminal([*_calsync(), "demo", "--home", str(tmp_path / "home")], done)
    try:
        shell = terminal.pane_pid()
        # The week first: the legend names a calendar of each provider, blocks are drawn.
        wait_until(
            lambda: (
                all(
                    words in terminal.screen()
                    for words in ("● live", "Week of", "this week", "Microsoft 365", "Google")
                )
                and "CalDAV" in terminal.screen()
                and "░" in terminal.screen()
            ),
            timeout=60,
            what="the week of three providers, live, with blocks",
        )
        demo_pids = _children(shell)
        assert demo_pids, "calsync demo runs as a child of the pane's shell"
        terminal.press("2")
        wait_until(
            lambda: all(
                account in terminal.screen()
                for account in (
                    "alex.morgan@contoso.example",
                    "alex.morgan@personal.example.com",
                    "alex.morgan@icloud.example",
                )
            ),
            timeout=30,
            what="the three accounts",
        )
        terminal.press("3")
        wait_until(
            lambda: all(n in terminal.screen() for n in ("Projects", "Family", "● on")),
            timeout=30,
            what="the demo calendars with sync on",
        )
        # Changes arrive by themselves: Google's and Graph's pushed (webhook syncs), the
        # family calendar's found by polling, each with something to sync.
        terminal.press("5")
        wait_until(
            lambda: "webhook" in terminal.screen() and "polling" in terminal.screen(),
            timeout=60,
            what="pushed and polled syncs in the sync log",
        )
        # How each hears of changes: Google's channel, Graph's subscriptions, CalDAV polled.
        terminal.press("6")
        wait_until(
            lambda: all(
                words in terminal.screen()
                for words in ("Google channel", "Graph subscription", "CalDAV: none", "polled")
            ),
            timeout=30,
            what="the three providers' push on the Channels screen",
        )
        terminal.press("7")
        wait_until(lambda: "Week of" in terminal.screen(), timeout=30, what="the week again")
        terminal.press("q")
        code = wait_until(lambda: done.exists() and done.read_text().strip(), timeout=60)
        assert code == "0", terminal.screen()
        # Emulators, Radicale, server and dashboard were one process; it is gone, with
        # nothing left behind.
        assert all(not Path(f"/proc/{pid}").exists() for pid in demo_pids)
    finally:
        terminal.close()
