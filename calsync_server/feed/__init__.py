"""The free/busy feed: a secret iCalendar URL per user with the merged times they are busy."""
