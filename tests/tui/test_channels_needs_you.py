"""What the Channels screen says needs the user, from the API's channel rows: an account signed
out (in CalDAV's words: the app password), a Google login about to end, a subscription removed
whose replacement fails; nothing for rows that are fine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calsync_tui.screens.channels import needs_you
from shared.domain import AccountState, ChannelState, Provider, PushState, SubscriptionNotice
from shared.schemas import ChannelOut

NOW = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)


def row(calendar_id: int, name: str, **fields: object) -> ChannelOut:
    base: dict[str, object] = {
        "calendar_id": calendar_id,
        "calendar_name": name,
        "state": ChannelState.ACTIVE,
        "channel_id": f"ch-{calendar_id}",
        "expires_at": NOW + timedelta(days=3),
        "last_notification_at": NOW,
        "failures": 0,
        "polling": False,
        "push": PushState.ACTIVE,
    }
    return ChannelOut(**{**base, **fields})  # type: ignore[arg-type]


def lines(channels: list[ChannelOut]) -> list[str]:
    return [line.plain for line in needs_you(channels, NOW)]


def test_healthy_rows_need_nothing() -> None:
    assert lines([row(1, "Work", provider=Provider.MICROSOFT, account_email="a@x")]) == []


def test_an_account_signed_out_is_named_once_in_its_providers_words() -> None:
    family = {"provider": Provider.CALDAV, "account_email": "alex@icloud.example"}
    refused = {**family, "account_state": AccountState.NEEDS_REAUTH, "state": None}
    google = {"provider": Provider.GOOGLE, "account_email": "alex@gmail.example"}
    signed_out = {**google, "account_state": AccountState.NEEDS_REAUTH}
    said = lines(
        [row(1, "Family", **refused), row(2, "Kids", **refused), row(3, "Me", **signed_out)]
    )
    assert said == [
        "alex@icloud.example: the server refused the app password: reconnect with a new one "
        "(2, a); its calendars are not synced meanwhile",
        "alex@gmail.example: the login expired or was revoked: sign in again (2, a); its "
        "calendars are not synced meanwhile",
    ]


def test_a_login_ending_soon_is_said_and_one_ending_later_is_not() -> None:
    soon = row(
        1, "Me", account_email="alex@gmail.example", login_expires_at=NOW + timedelta(hours=30)
    )
    later = row(
        2, "Other", account_email="sam@gmail.example", login_expires_at=NOW + timedelta(days=5)
    )
    assert lines([soon, later]) == [
        "alex@gmail.example: the login ends in 30 h (the Google app is in Testing): publish "
        "it, or sign in again (2, a)"
    ]


def test_a_removed_subscription_whose_replacement_fails_says_both() -> None:
    projects = row(
        1,
        "Projects",
        provider=Provider.MICROSOFT,
        account_email="alex@contoso.example",
        state=ChannelState.FAILING,
        failures=2,
        last_error="503 ServiceUnavailable",
        notice=SubscriptionNotice.REMOVED,
        notice_at=NOW,
    )
    assert lines([projects]) == [
        "Projects (2 failures): removed by Microsoft; a new one failed: 503 ServiceUnavailable"
    ]
