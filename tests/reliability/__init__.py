"""Reliability suites: a simulated season of a mixed user's calendars, the invariant checked
every simulated day."""
