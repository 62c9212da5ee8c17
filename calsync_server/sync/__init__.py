"""The sync engine: pure planning of busy blocks (events, planner, echoes) and its I/O around it."""
