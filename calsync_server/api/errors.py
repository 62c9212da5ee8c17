"""Every error answers JSON `{"error", "detail"?}`; nothing unexpected leaks as a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_405_METHOD_NOT_ALLOWED,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_500_INTERNAL_SERVER_ERROR,
)

from calsync_server.api.bodies import BodyTooDeep

log = logging.getLogger("calsync.server")

_WHERE = {"query": "query parameter", "path": "path parameter", "body": "body field"}


def _problem(item: Any) -> str:
    """One of Litestar's validation problems ({message, key, source}) as a sentence."""
    if not isinstance(item, dict):
        return str(item)
    key, source, message = item.get("key"), item.get("source"), str(item.get("message", ""))
    if source == "body" and key == "data":
        # The body as a whole; a KeyError's text ("'data'") means there was none.
        return f"body: {'a JSON object is required' if message == repr(key) else message}"
    # Litestar's sources are `ParamType` enums, whose str() is their name ("ParamType.PATH").
    source = str(getattr(source, "value", source))
    return f"{_WHERE.get(source, source)} `{key}`: {message}"


def _max_body(request: Request[Any, Any, Any]) -> int | None:
    try:
        return request.route_handler.resolve_request_max_body_size()
    except Exception:  # no route resolved for this request
        return None


def _message(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    """The exception's own words, or, where Litestar only gave the status phrase, clearer ones
    (its validation messages repeat the whole URL instead of naming the problem)."""
    detail = str(exc.detail)
    if isinstance(exc.__cause__, BodyTooDeep):
        return f"the body is {detail}"
    if isinstance(exc.__cause__, SerializationException):
        return f"the body is not valid JSON: {detail.removeprefix('JSON is malformed: ')}"
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        return "invalid request: " + "; ".join(_problem(item) for item in exc.extra)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = ""
    if detail != phrase:
        return detail
    where = f"{request.method} {request.url.path}"
    if exc.status_code == HTTP_404_NOT_FOUND:
        return f"no such resource: {where}"
    if exc.status_code == HTTP_405_METHOD_NOT_ALLOWED:
        return f"method not allowed: {where}"
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        limit = _max_body(request)
        return "request body too large" + (f": at most {limit} bytes" if limit else "")
    return detail


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    content: dict[str, Any] = {"error": _message(request, exc)}
    if isinstance(exc, ValidationException) and exc.extra:
        content["detail"] = exc.extra
    return Response(content, status_code=exc.status_code, headers=exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Logged with its type and place only: messages of library errors can carry tokens.
    # A free/busy feed's path is its secret: never in the log.
    path = "/feeds/..." if request.url.path.startswith("/feeds/") else request.url.path
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, path)
    log.debug("details", exc_info=exc)
    return Response(
        {"error": "internal error: the server log has the details"},
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: _http_error, Exception: _unexpected}
