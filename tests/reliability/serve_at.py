"""The real `calsync serve`, in a process of its own, on the simulated season's clock: the
season's kill -9 step (season.py, `Season._do_kill`) starts it on the walk's database, home
and emulators, lets it claim a queued sync and kills it with SIGKILL while it writes blocks.

    python -m tests.reliability.serve_at <ISO instant> serve --port N

Its clock. The walk's engine runs on an injected clock standing in 2030 (the season's days);
`calsync serve` builds its Runtime on the system clock and takes no clock from its settings,
and the clock matters to the killed sync (its window is "today" to the horizon: on the real
date it would plan none of the season's blocks, only delete them). A clock setting would be a
test hook among the user's settings, so none is added: this entry point moves the process's
wall clock instead (time-machine, ticking from the walk's instant, the way `make test` moves
the suite's own wall clock: tests/support/clock.py) and then runs calsync's own command line,
unchanged. Ticking keeps its leases, backoffs and idle polls at the real pace; the monotonic
clock asyncio and uvicorn use is not moved. Nothing else differs from a server a person runs:
the same Runtime, workers, scheduler, job queue and providers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
import time_machine

from shared.settings import Settings, env_name
from tests.support.processes import REPO, _free_port

# The walk asks the server for nothing but the job it queued: no poll and no safety net of the
# server's own may start while the walk waits for its writes (the walk's own passes do those).
QUIET = {"poll_interval_seconds": 86400.0, "full_reconcile_interval_hours": 100000.0}


def environment(settings: Settings) -> dict[str, str]:
    """The process's environment: the walk's settings (what differs from the defaults), and no
    CALSYNC_* of the caller's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    defaults = Settings(home=settings.home)
    for field in msgspec.structs.fields(Settings):
        value = QUIET.get(field.name, getattr(settings, field.name))
        if field.name == "home" or value is None or value == getattr(defaults, field.name):
            continue
        env[env_name(field.name)] = str(value)
    env.update(
        PYTHONUNBUFFERED="1",
        CALSYNC_HOME=str(settings.home),
        CALSYNC_API_TOKEN="season-serve",  # no token file written into the walk's home
    )
    return env


class Serving:
    """One `calsync serve` process of the walk's: its output goes to `log`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        # The job the walk queued for it, and whether it was still running when the fault came.
        self.job_id = 0
        self.mid_sync = False

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def check_alive(self) -> bool:
        """True; raises with its output when the process ended by itself."""
        if self.process.poll() is not None:
            raise AssertionError(
                f"calsync serve exited ({self.process.returncode}) by itself:\n{self.output()}"
            )
        return True

    def readiness(self) -> int:
        """/readyz's status (the database answers within its 5 s, or the check says not)."""
        return httpx.get(f"{self.url}/readyz", timeout=30).status_code

    def stop(self) -> int:
        """SIGTERM (a clean stop, as a process manager's): its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@contextmanager
def serving(at: datetime, settings: Settings, log: Path) -> Iterator[Serving]:
    """`calsync serve` at `at` (ticking) on `settings`; killed (SIGKILL) and reaped when the
    block ends still running, whatever the block did."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "tests.reliability.serve_at",
        at.isoformat(),
        "serve",
        "--port",
        str(port),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=environment(settings), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Serving(process, port, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def main(argv: list[str]) -> None:
    traveller = time_machine.travel(datetime.fromisoformat(argv[0]), tick=True)
    traveller.start()
    from calsync_server.cli import main as calsync

    calsync(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
