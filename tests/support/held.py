"""An emulator's fault delays as a gate the test opens: answers held for as long as it says."""

from __future__ import annotations

import asyncio
import threading


class HeldAnswers:
    """Give `wait` as an emulator's `sleep`: an answer with a fault's delay waits until the
    test calls `release`, however long that is (no clock in it), and the test reads how many
    are waiting."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.holding = 0  # answers waiting at the gate now
        self.let_go = 0  # answers that went through it

    async def wait(self, seconds: float) -> None:
        del seconds  # held until released, whatever the delay asked for
        with self._lock:
            self.holding += 1
        await asyncio.to_thread(self._open.wait)
        with self._lock:
            self.holding -= 1
            self.let_go += 1

    def release(self) -> None:
        """Let every held answer go, and those to come through at once."""
        self._open.set()
