"""The launcher: the only part of calsync_tui that imports calsync_server (to start it embedded)."""
