"""The three-provider demo's world as `calsync demo` builds it (live, today): one person's
accounts on Google, Microsoft 365 and CalDAV connected, and the changes each provider makes
every few seconds reach calsync (pushed by Google and Graph, polled from Radicale) and are
mirrored as blocks, seen through the API the dashboard reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from calsync_tui.launch.demo import demo_world
from tests.support.waiting import wait_until


def _live_changes(client: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    """The live changes calsync knows (by provider), and every block standing for one."""
    accounts = {a["id"]: a["provider"] for a in client.get("api/v1/accounts").json()}
    provider_of = {
        c["id"]: accounts[c["account_id"]] for c in client.get("api/v1/calendars").json()
    }
    now = datetime.now(UTC)
    answer = client.get(
        "api/v1/timeline",
        params={
            "start": (now - timedelta(days=1)).isoformat(),
            "end": (now + timedelta(days=9)).isoformat(),
        },
    )
    answer.raise_for_status()
    timeline = answer.json()
    found: dict[str, list[dict[str, Any]]] = {}
    blocked = {b["source_event_id"] for b in timeline["blocks"]}
    for event in timeline["events"]:
        title = event["summary"] or ""
        if title.startswith(("Live change", "Family change")) and event["id"] in blocked:
            found.setdefault(provider_of[event["calendar_id"]], []).append(event)
    return found


def test_changes_arrive_from_each_provider_and_are_mirrored(tmp_path: Path) -> None:
    with demo_world(tmp_path / "home", live=True) as world, world.api() as client:
        assert world.providers == ("google", "microsoft", "caldav")
        accounts = {a["provider"]: a["email"] for a in client.get("api/v1/accounts").json()}
        assert accounts == {
            "google": "alex.morgan@personal.example.com",
            "microsoft": "alex.morgan@contoso.example",
            "caldav": "alex.morgan@icloud.example",
        }
        wait_until(
            lambda: set(_live_changes(client)) == {"google", "microsoft", "caldav"},
            timeout=90,
            what="a live change of each provider, mirrored as blocks",
        )
        # Google and Graph push (webhook syncs); the CalDAV calendars are polled every 5 s.
        # Asked per provider: the newest page of all logs may hold only pushed syncs.
        by_provider: dict[str, list[int]] = {}
        for calendar in client.get("api/v1/calendars").json():
            provider = next(
                p for p, email in accounts.items() if email == calendar["account_email"]
            )
            by_provider.setdefault(provider, []).append(calendar["id"])

        def kinds(provider: str) -> set[str]:
            return {
                log["kind"]
                for calendar_id in by_provider[provider]
                for log in client.get(
                    "api/v1/sync-logs", params={"calendar_id": calendar_id}
                ).json()["items"]
            }

        for provider, kind in (
            ("google", "webhook"),
            ("microsoft", "webhook"),
            ("caldav", "polling"),
        ):
            wait_until(
                lambda p=provider, k=kind: k in kinds(p),  # type: ignore[misc]
                timeout=60,
                what=f"a {kind} sync of the {provider} calendars",
            )
