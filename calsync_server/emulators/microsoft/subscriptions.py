"""Change notification subscriptions: validation of both URLs, lifetime, renew, delete,
reauthorize, and asynchronous delivery of `value[]` batches and lifecycle notices with retries."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from calsync_server.emulators.microsoft import errors
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.store import Change, Mailbox, Resource, Store, graph_time

CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_CLIENT_STATE = 128
# A user action makes more than one notification: Outlook follows a create with an update.
FOLLOW_UPS = {"created": ("created", "updated"), "updated": ("updated",), "deleted": ("deleted",)}
APPLICATION_ID = "00000000-0000-0000-0000-00000ca15e5c"


def _invalid(message: str) -> errors.GraphError:
    return errors.GraphError(400, "InvalidRequest", message)


def _check_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"'{name}' is required.")
    parts = urlsplit(value)
    # Graph wants HTTPS; loopback HTTP is allowed here so tests can receive on 127.0.0.1.
    if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
        raise _invalid(f"The {name} must be an HTTPS URL: {value}")
    return value


@dataclass
class Subscription:
    id: str
    owner: str
    tenant_id: str
    resource: str
    calendar_id: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    immutable_ids: bool
    pending: list[Resource] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    lifecycle_sent: list[str] = field(default_factory=list)
    reauthorization_for: datetime | None = None
    wakeup: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None

    def resource_view(self) -> Resource:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": APPLICATION_ID,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expiration),
            "creatorId": self.owner,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationQueryOptions": None,
            "notificationUrlAppId": None,
        }


class Subscriptions:
    """Holds subscriptions; delivers from the main server's event loop, whatever thread the
    change came from."""

    def __init__(self, store: Store, config: GraphEmulatorConfig) -> None:
        self.store = store
        self.config = config
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient()
        self._spawn(self._watch_lifetimes())

    async def close(self) -> None:
        self._loop = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --------------------------------------------------------------------------- API

    def _resolve(self, mailbox: Mailbox, resource: Any) -> str:
        if not isinstance(resource, str):
            raise _invalid("'resource' is required.")
        parts = [p for p in resource.strip("/").split("/") if p]
        lowered = [p.lower() for p in parts]
        if lowered[:1] == ["users"] and len(parts) > 1:
            if parts[1].lower() not in (mailbox.oid, mailbox.email.lower()):
                raise errors.access_denied()
            parts, lowered = ["me", *parts[2:]], ["me", *lowered[2:]]
        if lowered == ["me", "events"] or lowered == ["me", "calendar", "events"]:
            return mailbox.default_calendar
        if len(parts) == 4 and lowered[:2] == ["me", "calendars"] and lowered[3] == "events":
            return self.store.calendar(mailbox, parts[2]).id
        raise _invalid(f"The resource '{resource}' is not supported.")

    def _expiration(self, value: Any) -> datetime:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise _invalid("'expirationDateTime' must be a date and time.") from None
        if moment.tzinfo is None:
            raise _invalid("'expirationDateTime' needs a UTC offset.")
        now = self.store.now()
        most = self.config.subscription_max_minutes
        if moment <= now:
            raise _invalid("Subscription expiration must be in the future.")
        if moment > now + timedelta(minutes=most):
            raise _invalid(f"Subscription expiration can only be {most} minutes in the future.")
        return moment

    async def _validate(self, url: str) -> None:
        """Graph's handshake: POST `url?validationToken=...`; the endpoint must echo the
        decoded token as text/plain with 200 within the timeout."""
        token = (
            "Validation: Testing client application reachability for subscription Request-Id: "
            + str(uuid.uuid4())
        )
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
        failure = errors.GraphError(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
        )
        try:
            async with httpx.AsyncClient(timeout=self.config.validation_timeout_s) as client:
                answer = await client.post(
                    target, content=b"", headers={"content-type": "text/plain; charset=utf-8"}
                )
        except httpx.HTTPError:
            raise failure from None
        content_type = answer.headers.get("content-type", "")
        if (
            answer.status_code != 200
            or not content_type.startswith("text/plain")
            or answer.text != token
        ):
            raise failure

    async def create(self, mailbox: Mailbox, body: Resource, immutable: bool) -> Resource:
        change_type = body.get("changeType")
        kinds = tuple(k.strip() for k in str(change_type or "").split(",") if k.strip())
        if not kinds or any(k not in CHANGE_TYPES for k in kinds):
            raise _invalid("'changeType' must be a list of created, updated and deleted.")
        notification_url = _check_url(body.get("notificationUrl"), "notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = _check_url(lifecycle_url, "lifecycleNotificationUrl")
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE
        ):
            raise _invalid("'clientState' must be a string of at most 128 characters.")
        calendar_id = self._resolve(mailbox, body.get("resource"))
        expiration = self._expiration(body.get("expirationDateTime"))
        await self._validate(notification_url)
        if lifecycle_url is not None:
            await self._validate(lifecycle_url)
        subscription = Subscription(
            id=str(uuid.uuid4()),
            owner=mailbox.oid,
            tenant_id=mailbox.tenant_id,
            resource=str(body["resource"]),
            calendar_id=calendar_id,
            change_types=kinds,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expiration=expiration,
            immutable_ids=immutable,
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        return subscription.resource_view()

    def _own(self, mailbox: Mailbox, subscription_id: str) -> Subscription:
        with self._lock:
            subscription = self._subscriptions.get(subscription_id)
        if subscription is None or subscription.owner != mailbox.oid:
            raise errors.GraphError(
                404, "ResourceNotFound", f"The object was not found: {subscription_id}"
            )
        return subscription

    def get(self, mailbox: Mailbox, subscription_id: str) -> Resource:
        return self._own(mailbox, subscription_id).resource_view()

    def mine(self, mailbox: Mailbox) -> list[Resource]:
        with self._lock:
            found = [s for s in self._subscriptions.values() if s.owner == mailbox.oid]
        return [s.resource_view() for s in found]

    def renew(self, mailbox: Mailbox, subscription_id: str, body: Resource) -> Resource:
        subscription = self._own(mailbox, subscription_id)
        if "expirationDateTime" in body:
            subscription.expiration = self._expiration(body["expirationDateTime"])
        return subscription.resource_view()

    def reauthorize(self, mailbox: Mailbox, subscription_id: str) -> None:
        subscription = self._own(mailbox, subscription_id)
        subscription.reauthorization_for = subscription.expiration

    def delete(self, mailbox: Mailbox, subscription_id: str) -> None:
        subscription = self._own(mailbox, subscription_id)
        self._remove(subscription)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.pop(subscription.id, None)
        task, loop = subscription.task, self._loop
        if task is not None and loop is not None:
            loop.call_soon_threadsafe(task.cancel)

    def listing(self) -> list[Resource]:
        with self._lock:
            found = list(self._subscriptions.values())
        return [
            {
                "id": s.id,
                "resource": s.resource,
                "calendar_id": s.calendar_id,
                "notification_url": s.notification_url,
                "lifecycle_url": s.lifecycle_url,
                "expiration": graph_time(s.expiration),
                "delivered": s.delivered,
                "failed": s.failed,
                "attempts": s.attempts,
                "lifecycle_sent": list(s.lifecycle_sent),
            }
            for s in found
        ]

    # ----------------------------------------------------------------------- delivery

    def on_change(self, change: Change) -> None:
        """A store listener: queue the change's notifications on every matching subscription."""
        loop = self._loop
        if loop is None:
            return
        now = self.store.now()
        with self._lock:
            matching = [
                s
                for s in self._subscriptions.values()
                if s.calendar_id == change.calendar_id and s.expiration > now
            ]
        for subscription in matching:
            event_id = change.event_id if subscription.immutable_ids else change.rest_id
            path = f"Users/{subscription.owner}/Events/{event_id}"
            for kind in FOLLOW_UPS[change.change_type]:
                if kind not in subscription.change_types:
                    continue
                entry: Resource = {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": graph_time(subscription.expiration),
                    "changeType": kind,
                    "resource": path,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Event",
                        "@odata.id": path,
                        "@odata.etag": f'W/"{change.change_key}"',
                        "id": event_id,
                    },
                    "clientState": subscription.client_state,
                    "tenantId": subscription.tenant_id,
                }
                with self._lock:
                    subscription.pending.append(entry)
            loop.call_soon_threadsafe(self._wake, subscription)

    def _wake(self, subscription: Subscription) -> None:
        if subscription.wakeup is None:
            subscription.wakeup = asyncio.Event()
        subscription.wakeup.set()
        if subscription.task is None or subscription.task.done():
            subscription.task = asyncio.get_running_loop().create_task(self._run(subscription))
            self._tasks.add(subscription.task)
            subscription.task.add_done_callback(self._tasks.discard)

    async def _run(self, subscription: Subscription) -> None:
        assert subscription.wakeup is not None
        while True:
            await subscription.wakeup.wait()
            subscription.wakeup.clear()
            # Never inside the request that made the change; changes close together batch up.
            await asyncio.sleep(self.config.push_delay_s)
            with self._lock:
                batch, subscription.pending = subscription.pending, []
            if batch:
                ok = await self._post(subscription, subscription.notification_url, batch)
                if ok:
                    subscription.delivered += 1
                else:
                    subscription.failed += 1

    async def _post(self, subscription: Subscription, url: str, value: list[Resource]) -> bool:
        """POST `{"value": [...]}`; retried when the answer is not 2xx or comes too late."""
        assert self._client is not None
        wait = self.config.push_retry_base_s
        for attempt in range(self.config.push_max_attempts):
            subscription.attempts += 1
            try:
                answer = await self._client.post(
                    url, json={"value": value}, timeout=self.config.notification_timeout_s
                )
                if 200 <= answer.status_code < 300:
                    return True
            except httpx.HTTPError:
                pass  # unreachable or too slow: as a failure, worth another try
            if attempt + 1 < self.config.push_max_attempts:
                await asyncio.sleep(wait)
                wait *= 2
        return False

    # ---------------------------------------------------------------------- lifecycle

    def lifecycle(self, subscription_id: str, event: str) -> Resource:
        """Send a lifecycle notice now (admin API); `subscriptionRemoved` also removes it."""
        if event not in LIFECYCLE_EVENTS:
            raise _invalid(f"lifecycle event must be one of {', '.join(LIFECYCLE_EVENTS)}")
        with self._lock:
            subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            raise errors.GraphError(404, "ResourceNotFound", "No such subscription.")
        if subscription.lifecycle_url is None:
            raise _invalid("The subscription has no lifecycleNotificationUrl.")
        self._send_lifecycle(subscription, event)
        if event == "subscriptionRemoved":
            self._remove(subscription)
        return {"id": subscription.id, "lifecycleEvent": event}

    def _send_lifecycle(self, subscription: Subscription, event: str) -> None:
        loop, url = self._loop, subscription.lifecycle_url
        subscription.lifecycle_sent.append(event)
        if loop is None or url is None:
            return
        notice = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": graph_time(subscription.expiration),
            "tenantId": subscription.tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        loop.call_soon_threadsafe(self._spawn, self._post(subscription, url, [notice]))

    def check_lifetimes(self) -> None:
        """Near expiry: `reauthorizationRequired` once per expiry; past it: removed, with
        `subscriptionRemoved` to a lifecycle URL."""
        now = self.store.now()
        lead = timedelta(seconds=self.config.reauthorization_lead_s)
        with self._lock:
            found = list(self._subscriptions.values())
        for subscription in found:
            if subscription.expiration <= now:
                if subscription.lifecycle_url is not None:
                    self._send_lifecycle(subscription, "subscriptionRemoved")
                self._remove(subscription)
            elif (
                subscription.expiration - now <= lead
                and subscription.reauthorization_for != subscription.expiration
            ):
                subscription.reauthorization_for = subscription.expiration
                if subscription.lifecycle_url is not None:
                    self._send_lifecycle(subscription, "reauthorizationRequired")

    async def _watch_lifetimes(self) -> None:
        while True:
            await asyncio.sleep(self.config.lifecycle_poll_s)
            self.check_lifetimes()
