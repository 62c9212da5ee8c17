"""Accounts: OAuth credentials kept encrypted at rest, and the users that own accounts."""
