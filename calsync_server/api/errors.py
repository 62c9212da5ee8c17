"""Every error answers JSON `{"error", "detail"?}`; nothing unexpected leaks as a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("calsync.server")


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    content: dict[str, Any] = {"error": exc.detail}
    if isinstance(exc, ValidationException) and exc.extra:
        content["detail"] = exc.extra
    return Response(content, status_code=exc.status_code, headers=exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Logged with its type and place only: messages of library errors can carry tokens.
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    log.debug("details", exc_info=exc)
    return Response(
        {"error": "internal error: the server log has the details"},
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: _http_error, Exception: _unexpected}
