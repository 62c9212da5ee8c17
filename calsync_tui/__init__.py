"""The calsync dashboard: a Textual app that reads everything through the server's HTTP API."""
