"""A small fault-injecting reverse proxy put in front of a real CalDAV server by the tests
(or of the Graph emulator, for a fault the emulator does not make).

It forwards every request as it is and answers the provider's bad days on demand: a failure
status (with Retry-After, in seconds or as an HTTP date) or a dropped connection for the next
requests, a refused login, a sync token that is no longer valid, the collection itself listed
as a sync-collection member (as iCloud does), a calendar home on another host (iCloud's
partition hosts), a root that is not DAV (discovery must take /.well-known/caldav), a server
without sync-collection (the REPORT refused as such servers refuse it, and no sync-token in
PROPFIND answers), and a Basic login check for servers without one of their own (Xandikos).
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import httpx

_TOKEN = re.compile(rb"(<(?:[A-Za-z0-9_]+:)?sync-token[^>]*>)([^<]*)(<)")
_RESPONSE = re.compile(rb"<(?:[A-Za-z0-9_]+:)?response\b.*?</(?:[A-Za-z0-9_]+:)?response>", re.S)
_HREF = re.compile(rb"<(?:[A-Za-z0-9_]+:)?href>([^<]*)<")
_WRITE_PRIVILEGE = re.compile(
    rb"<(?P<p>[A-Za-z0-9_]+:)?privilege>\s*<(?:[A-Za-z0-9_]+:)?"
    rb"(?:all|write|write-content|write-properties|bind|unbind)\s*/>\s*</(?P=p)?privilege>"
)
_MULTISTATUS_END = re.compile(rb"</(?:[A-Za-z0-9_]+:)?multistatus>\s*$")
_HOME_SET = re.compile(
    rb"(<(?:[A-Za-z0-9_]+:)?calendar-home-set[^>]*>\s*<(?:[A-Za-z0-9_]+:)?href>)(/[^<]*<)"
)
_SYNC_TOKEN_PROP = re.compile(
    rb"<(?P<p>[A-Za-z0-9_]+:)?sync-token(?:\s[^>]*)?(?:/>|>[^<]*</(?P=p)?sync-token>)"
)
# How servers without RFC 6578 answer its REPORT: RFC 3253's precondition in a 403 (or a 415,
# as SabreDAV without its sync plugin), or a plain 501.
_NO_SYNC_REPORT = (
    b'<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:"><D:supported-report/></D:error>'
)


@dataclass
class Fault:
    status: int = 503
    # Seconds, or a string said as it is (an HTTP date).
    retry_after: float | str | None = None
    drop: bool = False
    stall: bool = False  # no answer at all, until the client gives up (a timeout)


@dataclass
class ProxyState:
    faults: deque[Fault] = field(default_factory=deque)
    refuse_login: bool = False
    login: tuple[str, str] | None = None
    icloud_sync: bool = False
    root_not_dav: str | None = None  # where /.well-known/caldav points when the root is not DAV
    # Another host's root (http://host:port) the calendar home is said to be on, as iCloud
    # names a pNN-caldav.icloud.com partition host in calendar-home-set.
    home_elsewhere: str | None = None
    # Calendar path -> tokens issued after its cursors were expired (all others are refused).
    expired: dict[str, set[str]] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)
    # A server without sync-collection: the status its REPORT is refused with (None: served),
    # and whether PROPFIND answers lose their sync-token as such a server has none to give.
    refuse_sync: int | None = None
    hide_sync_token: bool = False
    log: list[tuple[str, str]] = field(default_factory=list)


class FaultProxy:
    """A reverse proxy on a free local port in front of ``upstream`` (http://host:port)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.state = ProxyState()
        self.lock = threading.Lock()
        self._client = httpx.Client(base_url=self.upstream, timeout=30)
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.closing = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- what tests ask of it --------------------------------------------------------------

    def fail_next(
        self, status: int = 503, *, times: int = 1, retry_after: float | str | None = None
    ) -> None:
        with self.lock:
            self.state.faults.extend(Fault(status, retry_after) for _ in range(times))

    def drop_next(self, *, times: int = 1) -> None:
        with self.lock:
            self.state.faults.extend(Fault(drop=True) for _ in range(times))

    def stall_next(self, *, times: int = 1) -> None:
        """The next requests get no answer: the connection is held until the client gives up
        (or the proxy closes), then dropped."""
        with self.lock:
            self.state.faults.extend(Fault(stall=True) for _ in range(times))

    def expire_tokens(self, calendar_path: str) -> None:
        """Every sync token of the calendar issued so far is refused from now on."""
        with self.lock:
            self.state.expired[_norm(calendar_path)] = set()

    def make_read_only(self, calendar_path: str) -> None:
        """Writes into the calendar are refused (403) and PROPFIND reports read rights only."""
        with self.lock:
            self.state.read_only.add(_norm(unquote(calendar_path)))

    def without_sync_collection(self, status: int = 501, *, token: bool = False) -> None:
        """From now on the server acts as one without RFC 6578: its REPORT answers ``status``
        (403/415 with DAV:supported-report, else a bare status), and, unless ``token``, its
        calendars have no sync-token to give."""
        with self.lock:
            self.state.refuse_sync = status
            self.state.hide_sync_token = not token

    def requests(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.state.log)

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


def _norm(path: str) -> str:
    return path.rstrip("/") + "/"


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"
    # The headers and the body go out as two writes: with Nagle on, the body waits for the
    # client's delayed ACK, 40 ms a request, most of what a CalDAV test spent.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    def _handle(self) -> None:
        proxy = self.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        with proxy.lock:
            state = proxy.state
            state.log.append((self.command, path))
            fault = state.faults.popleft() if state.faults else None
        if fault is not None and fault.stall:
            # Held until the client hangs up: reading from it returns then (b"" or an error).
            self.connection.settimeout(30)
            with contextlib.suppress(OSError):
                while not proxy.closing.is_set() and self.connection.recv(1):
                    pass
            self.close_connection = True
            return
        if fault is not None and fault.drop:
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None:
            headers = {}
            if isinstance(fault.retry_after, str):
                headers["Retry-After"] = fault.retry_after
            elif fault.retry_after is not None:
                headers["Retry-After"] = str(int(fault.retry_after))
            if fault.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="calsync-test"'
            self._answer(fault.status, b"injected fault", headers)
            return
        if state.refuse_login or (state.login and not self._logged_in(state.login)):
            self._answer(401, b"login refused", {"WWW-Authenticate": 'Basic realm="test"'})
            return
        if state.root_not_dav is not None:
            if path.startswith("/.well-known/caldav"):
                self._answer(301, b"", {"Location": state.root_not_dav})
                return
            if path in ("/", ""):
                self._answer(404, b"not a DAV resource", {})
                return
        if self.command in ("PUT", "DELETE", "PROPPATCH") and any(
            unquote(path).startswith(p) for p in state.read_only
        ):
            self._answer(403, b"read-only calendar", {})
            return
        if (
            state.refuse_sync is not None
            and self.command == "REPORT"
            and b"sync-collection" in body
        ):
            refusal = _NO_SYNC_REPORT if state.refuse_sync in (400, 403, 415) else b"no such report"
            self._answer(state.refuse_sync, refusal, {"Content-Type": "application/xml"})
            return
        body = self._rewrite_token(path, body)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("host", "content-length", "connection")
        }
        reply = proxy._client.request(self.command, path, content=body, headers=headers)
        content = reply.content
        if reply.status_code == 207:
            self._record_tokens(path, content)
            if self.command == "REPORT" and b"sync-collection" in body:
                content = self._after_sync(path, content)
            if self.command == "PROPFIND" and state.read_only:
                content = self._read_only_rights(content)
            elsewhere = state.home_elsewhere
            if self.command == "PROPFIND" and elsewhere:
                content = _HOME_SET.sub(
                    lambda m: m.group(1) + elsewhere.encode() + m.group(2), content
                )
            if self.command == "PROPFIND" and state.hide_sync_token:
                content = _SYNC_TOKEN_PROP.sub(b"", content)
        out = {
            k: v
            for k, v in reply.headers.items()
            if k.lower()
            not in ("content-length", "transfer-encoding", "connection", "content-encoding")
        }
        self._answer(reply.status_code, content, out)

    def _logged_in(self, login: tuple[str, str]) -> bool:
        expected = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        return self.headers.get("Authorization") == expected

    def _rewrite_token(self, path: str, body: bytes) -> bytes:
        """A refused token is swapped for one the server never issued: the server then answers
        in its own words (Radicale 403 valid-sync-token, Xandikos its error)."""
        if self.command != "REPORT" or b"sync-collection" not in body:
            return body
        with self.proxy.lock:
            fresh = self.proxy.state.expired.get(_norm(path))
        if fresh is None:
            return body
        match = _TOKEN.search(body)
        if match is None or not match.group(2).strip():
            return body
        token = match.group(2).decode()
        if token in fresh:
            return body
        bogus = token[: max(0, len(token) - 12)] + "0" * 12
        return body[: match.start(2)] + bogus.encode() + body[match.end(2) :]

    def _record_tokens(self, path: str, content: bytes) -> None:
        """Tokens the server hands out after an expiry are good ones."""
        with self.proxy.lock:
            fresh = self.proxy.state.expired.get(_norm(path))
            if fresh is not None:
                fresh.update(m.group(2).decode() for m in _TOKEN.finditer(content))

    def _read_only_rights(self, content: bytes) -> bytes:
        with self.proxy.lock:
            read_only = set(self.proxy.state.read_only)

        def rewrite(match: re.Match[bytes]) -> bytes:
            block = match.group(0)
            href = _HREF.search(block)
            if href is None or _norm(unquote(href.group(1).decode())) not in read_only:
                return block
            return _WRITE_PRIVILEGE.sub(b"", block)

        return _RESPONSE.sub(rewrite, content)

    def _after_sync(self, path: str, content: bytes) -> bytes:
        with self.proxy.lock:
            icloud = self.proxy.state.icloud_sync
        if icloud:
            # iCloud lists the calendar collection itself among the changed members.
            own = (
                f'<D:response xmlns:D="DAV:"><D:href>{_norm(path)}</D:href><D:propstat>'
                '<D:prop><D:getetag>"collection"</D:getetag></D:prop>'
                "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
            ).encode()
            end = _MULTISTATUS_END.search(content)
            if end is not None:
                content = content[: end.start()] + own + content[end.start() :]
        return content

    def _answer(self, status: int, content: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)
