"""What the calsync server and dashboard share: wire schemas, settings, domain enums, the clock."""
