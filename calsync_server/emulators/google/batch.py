"""`POST /batch/calendar/v3`: multipart/mixed in, multipart/mixed out, as the client library
writes and parses it."""

from __future__ import annotations

import secrets
from email.message import Message
from email.parser import BytesParser, Parser
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from calsync_server.emulators.common.api import ApiRequest, ApiResponse
from calsync_server.emulators.google import errors
from calsync_server.emulators.google.calendar_api import CalendarApi, error_response

MAX_PARTS = 1000


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _parse_part(part: Message, outer: ApiRequest) -> ApiRequest:
    payload = part.get_payload()
    if not isinstance(payload, str):
        raise errors.bad_request("Batch part is not an HTTP request.")
    # The client library ends inner lines in LF only; others send CRLF. Accept both.
    text = payload.replace("\r\n", "\n")
    request_line, _, rest = text.partition("\n")
    pieces = request_line.split(" ")
    if len(pieces) < 2:
        raise errors.bad_request("Malformed batch part request line.")
    method, target = pieces[0], pieces[1]
    head, _, body = rest.partition("\n\n")
    headers_msg = Parser().parsestr(head + "\n\n", headersonly=True)
    headers = {k.lower(): v for k, v in headers_msg.items()}
    if "authorization" not in headers and "authorization" in outer.headers:
        headers["authorization"] = outer.headers["authorization"]
    split = urlsplit(target)
    return ApiRequest(
        method=method.upper(),
        path=split.path,
        query=parse_qsl(split.query, keep_blank_values=True),
        headers=headers,
        body=body.encode(),
        root_url=outer.root_url,
    )


def handle_batch(api: CalendarApi, outer: ApiRequest) -> ApiResponse:
    content_type = outer.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/mixed"):
        return error_response(errors.bad_request("Batch requests must be multipart/mixed."))
    message = BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + outer.body
    )
    parts = message.get_payload()
    if not message.is_multipart() or not isinstance(parts, list) or not parts:
        return error_response(errors.bad_request("Batch request has no parts."))
    if len(parts) > MAX_PARTS:
        return error_response(
            errors.bad_request(f"A batch request may hold at most {MAX_PARTS} calls.")
        )
    boundary = "batch_" + secrets.token_hex(12)
    chunks: list[str] = []
    delay = 0.0
    for index, part in enumerate(parts, start=1):
        if not isinstance(part, Message):
            continue
        content_id = part.get("Content-ID", f"<{index}>").strip()
        # Google answers part <X> with <response-X>; the client library keys on that.
        inner_id = content_id[1:-1] if content_id.startswith("<") else content_id
        try:
            response = api.handle(_parse_part(part, outer))
        except errors.GoogleError as exc:
            response = error_response(exc)
        if response.drop:
            return ApiResponse(0, drop=True, delay_s=max(delay, response.delay_s))
        delay = max(delay, response.delay_s)
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            f"Content-ID: <response-{inner_id}>",
            "",
            f"HTTP/1.1 {response.status} {_reason(response.status)}",
        ]
        lines += [f"{name.title()}: {value}" for name, value in response.headers.items()]
        lines += [f"Content-Length: {len(response.body)}", "", response.body.decode()]
        chunks.append("\r\n".join(lines))
    body = "\r\n".join([*chunks, f"--{boundary}--", ""])
    return ApiResponse(
        200,
        body.encode(),
        {"content-type": f"multipart/mixed; boundary={boundary}"},
        delay_s=delay,
    )
