"""The few Microsoft Graph v1.0 shapes calsync reads, as msgspec Structs (extra fields ignored)."""

from __future__ import annotations

from typing import Any

import msgspec


class DateTimeTimeZone(msgspec.Struct, frozen=True):
    dateTime: str
    timeZone: str | None = None


class ResponseStatus(msgspec.Struct, frozen=True):
    response: str | None = None


class EmailAddress(msgspec.Struct, frozen=True):
    address: str | None = None
    name: str | None = None


class Attendee(msgspec.Struct, frozen=True):
    emailAddress: EmailAddress | None = None
    type: str | None = None


class ExtendedProperty(msgspec.Struct, frozen=True):
    id: str
    value: str | None = None


class Removed(msgspec.Struct, frozen=True):
    reason: str | None = None


class GraphEvent(msgspec.Struct, frozen=True):
    """An event, an occurrence, a series master, or a delta's `@removed` entry (id only)."""

    id: str
    removed: Removed | None = msgspec.field(default=None, name="@removed")
    etag: str | None = msgspec.field(default=None, name="@odata.etag")
    changeKey: str | None = None
    subject: str | None = None
    start: DateTimeTimeZone | None = None
    end: DateTimeTimeZone | None = None
    originalStartTimeZone: str | None = None
    isAllDay: bool = False
    isCancelled: bool = False
    showAs: str | None = None
    sensitivity: str | None = None
    isReminderOn: bool | None = None
    responseStatus: ResponseStatus | None = None
    type: str | None = None
    seriesMasterId: str | None = None
    lastModifiedDateTime: str | None = None
    transactionId: str | None = None
    attendees: list[Attendee] = []
    singleValueExtendedProperties: list[ExtendedProperty] | None = None


class EventPage(msgspec.Struct, frozen=True):
    value: list[GraphEvent] = []
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")
    delta_link: str | None = msgspec.field(default=None, name="@odata.deltaLink")


class GraphCalendar(msgspec.Struct, frozen=True):
    id: str
    name: str = ""
    color: str | None = None
    hexColor: str | None = None
    canEdit: bool = True
    isDefaultCalendar: bool = False


class CalendarPage(msgspec.Struct, frozen=True):
    value: list[GraphCalendar] = []
    next_link: str | None = msgspec.field(default=None, name="@odata.nextLink")


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str = ""
    message: str = ""


class ErrorBody(msgspec.Struct, frozen=True):
    error: ErrorDetail


class BatchAnswer(msgspec.Struct, frozen=True):
    """One item of a `$batch` response; `body` is JSON (or text for some errors)."""

    id: str
    status: int
    headers: dict[str, str] = {}
    body: Any = None


class BatchResponse(msgspec.Struct, frozen=True):
    responses: list[BatchAnswer]


class GraphSubscription(msgspec.Struct, frozen=True):
    id: str
    expirationDateTime: str | None = None
    resource: str | None = None


class NotificationItem(msgspec.Struct, frozen=True):
    """One entry of a notification POST: a change (`changeType`) or a lifecycle notice."""

    subscriptionId: str
    changeType: str | None = None
    lifecycleEvent: str | None = None
    clientState: str | None = None
    resource: str | None = None
    subscriptionExpirationDateTime: str | None = None
    tenantId: str | None = None


class NotificationBody(msgspec.Struct, frozen=True):
    value: list[NotificationItem]


class Me(msgspec.Struct, frozen=True):
    """The signed-in user as /me tells who they are (the addresses mail reaches them by)."""

    mail: str | None = None
    userPrincipalName: str | None = None
    # "SMTP:primary@x" and "smtp:alias@x" (Exchange's spelling); absent for personal accounts.
    proxyAddresses: list[str] = []
