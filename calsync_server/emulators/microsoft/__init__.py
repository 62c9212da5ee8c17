"""A Microsoft Graph calendar emulator (identity platform v2.0 and Graph v1.0) over real HTTP."""

from calsync_server.emulators.microsoft.config import GraphEmulatorConfig

__all__ = ["GraphEmulatorConfig"]
