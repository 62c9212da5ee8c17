"""Request bodies are decoded in one place: a JSON document nested past a sane depth is a bad
request (400), never the decoder's RecursionError (500), whatever route reads it."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

# calsync's request bodies are flat objects with a list or two; nothing real comes near this.
# A fixed limit, not the decoder's own: msgspec gives up at Python's recursion limit minus the
# depth of the stack it is called from, so a body near that line passed in one place and
# failed in another.
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


class BodyTooDeep(SerializationException):
    """The body nests arrays or objects deeper than MAX_JSON_DEPTH."""


def json_depth(raw: bytes) -> int:
    """How deeply `raw` nests arrays and objects (brackets inside strings do not count).
    Only an upper bound for malformed JSON, which the decoder refuses anyway."""
    opened = raw.count(b"[") + raw.count(b"{")
    if opened <= MAX_JSON_DEPTH:
        return opened  # an upper bound that is enough: no scan for an ordinary body
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw))
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class CalsyncRequest(Request[Any, Any, Any]):
    """The app's request class: Litestar reads every JSON body through `json()`."""

    async def json(self) -> Any:
        body = await self.body()
        if json_depth(body) > MAX_JSON_DEPTH:
            raise BodyTooDeep(f"nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            return await super().json()
        except RecursionError:  # cannot happen below the limit; kept so it never is a 500
            raise BodyTooDeep(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
