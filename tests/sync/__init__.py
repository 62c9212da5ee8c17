"""Tests of the sync engine's pure planner, event parsing and echo classification."""
