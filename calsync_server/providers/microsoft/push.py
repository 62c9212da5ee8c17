"""Graph change notifications: subscriptions per calendar (made, renewed in place, deleted)
and the pure parser of what Graph POSTs to calsync's webhook."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec

from calsync_server.providers.microsoft.client import GraphClient
from calsync_server.providers.microsoft.mapping import parse_stamp
from calsync_server.providers.microsoft.wire import GraphSubscription, NotificationBody
from calsync_server.providers.model import (
    ErrorKind,
    Handshake,
    Notice,
    NoticeKind,
    ProviderError,
    Subscription,
)

# Graph allows 4,230 minutes for Outlook events; a little less leaves room for clock skew.
MAX_LIFETIME = timedelta(minutes=4200)
CHANGE_TYPES = "created,updated,deleted"
LIFECYCLE = {
    "reauthorizationRequired": NoticeKind.REAUTHORIZE,
    "subscriptionRemoved": NoticeKind.REMOVED,
    "missed": NoticeKind.MISSED,
}
CHANGES = frozenset({"created", "updated", "deleted"})
MAX_CLIENT_STATE = 128


def _expiry(now: datetime, lifetime: timedelta) -> str:
    moment = now.astimezone(UTC) + min(lifetime, MAX_LIFETIME)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _subscription(body: object, fallback_resource: str) -> Subscription:
    try:
        made = msgspec.convert(body, GraphSubscription)
    except msgspec.ValidationError as exc:
        raise ProviderError(ErrorKind.INVALID, f"an unreadable subscription: {exc}") from exc
    return Subscription(
        remote_id=made.id,
        expires_at=parse_stamp(made.expirationDateTime),
        resource=made.resource or fallback_resource,
    )


def subscribe(
    client: GraphClient,
    calendar_id: str,
    *,
    address: str,
    secret: str,
    lifetime: timedelta,
    now: datetime,
) -> Subscription:
    """A subscription to one calendar's events. Graph validates ``address`` (both as the
    notification and the lifecycle URL) before it answers, so the webhook must already be
    up; lifecycle notices come only when the lifecycle URL is set at creation."""
    if len(secret) > MAX_CLIENT_STATE:
        raise ProviderError(ErrorKind.INVALID, "Graph's clientState holds at most 128 characters")
    resource = f"me/calendars/{calendar_id}/events"
    answer = client.call(
        "POST",
        "/subscriptions",
        json={
            "changeType": CHANGE_TYPES,
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": resource,
            "expirationDateTime": _expiry(now, lifetime),
            "clientState": secret,
        },
    )
    return _subscription(answer.body, resource)


def renew(
    client: GraphClient, subscription: Subscription, *, lifetime: timedelta, now: datetime
) -> Subscription:
    """Renewal in place; ProviderError(GONE) when Graph no longer has it (make a new one)."""
    answer = client.call(
        "PATCH",
        f"/subscriptions/{subscription.remote_id}",
        json={"expirationDateTime": _expiry(now, lifetime)},
    )
    return _subscription(answer.body, subscription.resource)


def unsubscribe(client: GraphClient, subscription: Subscription) -> None:
    """Stop it; one that is already gone is stopped."""
    try:
        client.call("DELETE", f"/subscriptions/{subscription.remote_id}")
    except ProviderError as exc:
        if exc.kind is not ErrorKind.GONE:
            raise


def parse_notification(query: Mapping[str, str], body: bytes) -> Handshake | list[Notice]:
    """What Graph POSTed to the webhook: its validation handshake (answer the token as
    text/plain at once), or one notice per entry of `value[]`, each with its clientState as
    the secret to check. Pure: no I/O, no clock.

    Raises ValueError with a sentence saying what is wrong when the body is not Graph's.
    """
    token = query.get("validationToken")
    if token is not None:
        if not token:
            raise ValueError("an empty validationToken")
        return Handshake(token=token)
    if not body.strip():
        raise ValueError("an empty notification body (and no validationToken)")
    try:
        parsed = msgspec.json.decode(body, type=NotificationBody)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a Graph notification: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"a notification body that is not JSON: {exc}") from None
    notices: list[Notice] = []
    for index, item in enumerate(parsed.value):
        if not item.subscriptionId:
            raise ValueError(f"value[{index}] has an empty subscriptionId")
        if item.lifecycleEvent is not None:
            # A lifecycle event Graph adds later is safest read as "sync it".
            kind = LIFECYCLE.get(item.lifecycleEvent, NoticeKind.MISSED)
        elif item.changeType is not None:
            types = {t.strip() for t in item.changeType.split(",") if t.strip()}
            if not types or not types <= CHANGES:
                raise ValueError(f"value[{index}] has an unknown changeType {item.changeType!r}")
            kind = NoticeKind.CHANGED
        else:
            raise ValueError(f"value[{index}] has neither changeType nor lifecycleEvent")
        notices.append(Notice(item.subscriptionId, kind, secret=item.clientState))
    return notices
