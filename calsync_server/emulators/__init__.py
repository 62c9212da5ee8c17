"""Emulators of the calendar providers calsync syncs with, served over real HTTP."""
