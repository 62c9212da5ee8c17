"""The calsync server: webhooks, job queue, sync engine, providers, database and JSON API."""
