"""`calsync serve` in a process of its own on a free port, its output kept for failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from shared.http import ReusedConnectionRetry
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TOKEN = "token-ada"  # World's user "ada"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """One `calsync serve` process; its output goes to a file shown when something fails."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "calsync_server.cli", "serve", "--port", str(self.port)]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"calsync serve exited ({self.process.returncode}):\n{self.output()}"
            )
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self) -> None:
        wait_until(self.healthy, timeout=30, interval=0.05, what=f"{self.url}/healthz")

    def api(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            transport=ReusedConnectionRetry(),
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"calsync serve still running {timeout} s after {sig.name}:\n{self.output()}"
            ) from None


class Servers:
    """Starts `calsync serve` processes and makes sure none outlives the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Served] = []

    def start(self, home: Path, database_url: str, **settings: Any) -> Served:
        served = self.launch(home, database_url, **settings)
        served.wait_ready()
        return served

    def launch(self, home: Path, database_url: str, **settings: Any) -> Served:
        """Start one without waiting for it to answer."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
        env.update(
            PYTHONUNBUFFERED="1",
            CALSYNC_HOME=str(home),
            CALSYNC_DATABASE_URL=database_url,
        )
        env.update({f"CALSYNC_{name.upper()}": str(value) for name, value in settings.items()})
        served = Served(self.tmp_path / f"serve-{len(self.started)}.log", env)
        self.started.append(served)
        return served

    def kill_all(self) -> None:
        for served in self.started:
            if served.process.poll() is None:
                served.process.kill()
                served.process.wait(timeout=10)
