"""Google's push notifications read by a pure parser: X-Goog-* headers -> a calsync Notice."""

from __future__ import annotations

import functools
from urllib.parse import unquote, urlsplit

from calsync_server.providers.model import (
    Handshake,
    Notice,
    NoticeKind,
    PushHeader,
    PushParser,
    PushRequest,
)

# Google's notifications have an empty body; anything bigger than this is not one of them.
MAX_BODY_BYTES = 1024
KINDS = {"sync": NoticeKind.OPENED, "exists": NoticeKind.CHANGED, "not_exists": NoticeKind.CHANGED}
# Message numbers of up to 18 digits: they fit the database's BIGINT (Google's count from 1).
MESSAGE_NUMBER_DIGITS = 18

HEADERS = (
    PushHeader("X-Goog-Channel-ID", 64),
    PushHeader("X-Goog-Message-Number", MESSAGE_NUMBER_DIGITS, pattern=r"^[0-9]{1,18}$"),
    PushHeader("X-Goog-Resource-ID", 256),
    PushHeader("X-Goog-Resource-State", 32, pattern=f"^({'|'.join(KINDS)})$"),
    PushHeader("X-Goog-Resource-URI", 2048, required=False),
    PushHeader("X-Goog-Channel-Token", 256, required=False),
)
_RULES = {header.name.lower(): header for header in HEADERS}


class BadHeaders(ValueError):
    pass


def parse(request: PushRequest) -> Handshake | list[Notice]:
    """The X-Goog-* headers, checked, as one notice; BadHeaders names the first one wrong."""
    headers = request.headers

    def text(key: str) -> str:
        rule = _RULES[key]
        value = headers.get(key)
        if value is None or value == "":
            if rule.required:
                raise BadHeaders(f"missing header {rule.name}")
            return ""
        if len(value) > rule.longest:
            raise BadHeaders(f"header {rule.name} is longer than {rule.longest} characters")
        return str(value)

    channel_id = text("x-goog-channel-id")
    state = text("x-goog-resource-state")
    if state not in KINDS:
        raise BadHeaders(f"header X-Goog-Resource-State must be one of {', '.join(KINDS)}")
    number = text("x-goog-message-number")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (number.isascii() and number.isdigit()):
        raise BadHeaders("header X-Goog-Message-Number must be a non-negative integer")
    return [
        Notice(
            remote_id=channel_id,
            kind=KINDS[state],
            secret=text("x-goog-channel-token"),
            sequence=int(number),
            resource=text("x-goog-resource-id"),
            calendar=calendar_in(text("x-goog-resource-uri")),
        )
    ]


# A channel's notifications name the same resource again and again: urlsplit was a tenth of a
# notification's parse.
@functools.lru_cache(maxsize=1024)
def calendar_in(resource_uri: str) -> str:
    """The calendar id in `.../calendars/<id>/events...` (Google's X-Goog-Resource-URI)."""
    parts = urlsplit(resource_uri).path.split("/")
    try:
        return unquote(parts[parts.index("calendars") + 1])
    except (ValueError, IndexError):
        return ""


PARSER = PushParser(parse=parse, max_body=MAX_BODY_BYTES, headers=HEADERS)
