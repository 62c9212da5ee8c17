"""Background work: the durable sync-job queue and the workers that drain it."""
