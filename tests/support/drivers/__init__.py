"""The user's hands in each provider: make a calendar, add, move and delete events, break things."""
