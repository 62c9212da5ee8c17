"""CalDAV for the demo: a real Radicale server in this process, seeded with a family calendar."""
