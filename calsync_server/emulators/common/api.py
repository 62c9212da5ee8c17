"""A request and its answer, transport-free, so plain requests and batch parts share one path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json; charset=UTF-8"


@dataclass
class ApiRequest:
    method: str
    path: str  # percent-encoded, without the query
    query: list[tuple[str, str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    root_url: str  # the emulator's root, ending in "/"


@dataclass
class ApiResponse:
    """An answer; status 0 with `drop` closes the connection without one."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False

    @staticmethod
    def json(
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        content_type: str = JSON_TYPE,
    ) -> ApiResponse:
        return ApiResponse(
            status, json.dumps(payload).encode(), {"content-type": content_type, **(headers or {})}
        )


@dataclass
class SignInAnswer:
    """What a sign-in endpoint answers: a redirect (`location`), an HTML page, or JSON."""

    status: int
    json: dict[str, Any] | None = None
    html: str | None = None
    location: str | None = None
