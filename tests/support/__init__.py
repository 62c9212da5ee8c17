"""Helpers the test tiers share: waiting on conditions, a real push receiver."""
