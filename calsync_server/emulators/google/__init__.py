"""A Google Calendar API v3 emulator served over real HTTP, for tests, the demo and benchmarks."""

from calsync_server.emulators.google.config import EmulatorConfig

__all__ = ["EmulatorConfig"]
