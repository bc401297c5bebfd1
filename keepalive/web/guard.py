"""What keeps the monitor's own endpoint from being used against it.

- **Host check** (DNS rebinding): a web page on ``evil.example`` can make its name resolve to
  127.0.0.1 and then read this endpoint from the visitor's browser; the request still carries
  ``Host: evil.example``. Only names of this machine and IP literals are answered (a
  rebinding attack always arrives under a name, never under an IP literal), everything else
  gets ``421``. The names: localhost, the host name, the fully qualified name, the name
  MONITOR_HTTP_HOST gives, and any ``extra_host_names`` passed to ``start_web``. ``/health``
  is exempt: a second monitor may watch it under any name, and its body holds only counts
  and ages.
- **Connection cap**: ~1,100 idle connections once made /health unreachable and failed checks
  with "Too many open files". At most ``limit`` connections are kept; past it the
  longest-open idle one is closed to make room (a scraper reconnects), and when every one is
  busy the newcomer gets ``503`` and is closed. Idle connections and request heads that
  trickle in are also closed after aiohttp's ``keepalive_timeout`` (see keepalive.web.app).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler

from keepalive.probe.resolver import is_ip_literal

UNGUARDED_PATHS = frozenset({"/health"})
FQDN_TIMEOUT = 2.0
_REFUSAL_BODY = json.dumps({"error": "too many connections to the monitor; try again"}).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n" + _REFUSAL_BODY
)


def split_host(header: str) -> str:
    """The host part of a Host header, lower case, without port, brackets or a trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


def allowed_names(bound_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names this endpoint answers to besides IP literals.

    localhost, the machine's host name (short and as given by the system), the bound
    address when it is a name, and ``extra`` (e.g. the fully qualified name, see
    ``machine_names``, or the name a reverse proxy passes on).
    """
    names = {"localhost", socket.gethostname().lower(), *(name.lower().rstrip(".") for name in extra)}
    names.add(socket.gethostname().lower().partition(".")[0])
    if bound_host and not is_ip_literal(bound_host.strip("[]")):
        names.add(bound_host.lower().rstrip("."))
    names.discard("")
    return frozenset(names)


async def machine_names(timeout: float = FQDN_TIMEOUT) -> tuple[str, ...]:
    """The machine's fully qualified name, the one a scraper elsewhere most likely uses.

    socket.getfqdn asks the resolver, so it runs in a thread and is given up after
    ``timeout``: a dead resolver must not hold up the start (the name is then not allowed).
    """
    try:
        fqdn = await asyncio.wait_for(asyncio.to_thread(socket.getfqdn), timeout)
    except TimeoutError:
        return ()
    return (fqdn,) if fqdn and not is_ip_literal(fqdn) else ()


def host_allowed(header: str, names: frozenset[str]) -> bool:
    """May a request carrying this Host header be answered?"""
    host = split_host(header)
    return is_ip_literal(host) or host in names


def host_check(names: frozenset[str]) -> Middleware:
    """Middleware answering 421 to a request whose Host is not this machine (DNS rebinding)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get(hdrs.HOST)
        # No Host at all (HTTP/1.0 tools) cannot come from a browser, so it cannot be rebinding.
        if header is not None and request.path not in UNGUARDED_PATHS and not host_allowed(header, names):
            shown = header if len(header) <= 100 else header[:100] + "..."
            return web.json_response(
                {"error": f"Host {shown!r} is not a name of this monitor; use its address or host name"},
                status=421,
            )
        return await handler(request)

    return check


class _Refusal(asyncio.Protocol):
    """Answers 503 at once and hangs up, without reading the request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REFUSAL)
        transport.close()


class _Tracked(asyncio.Protocol):
    """aiohttp's handler for one connection, seen by the ConnectionLimit from accept to close.

    The limit cannot count ``web.Server.connections``: the event loop accepts a whole batch of
    sockets, making every protocol, before the first of them is connected and listed there.
    """

    def __init__(self, inner: RequestHandler, limit: ConnectionLimit) -> None:
        self.inner = inner
        self._limit = limit
        self._connected = False
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True
        if self._connected:
            self.inner.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.evicted:  # evicted between accept and now
            transport.close()
            return
        self._connected = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> None:
        self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._limit.forget(self)
        if self._connected:
            self.inner.connection_lost(exc)


class ConnectionLimit:
    """A protocol factory in front of aiohttp's ``web.Server`` keeping at most ``limit`` connections.

    Connections handling a request right now are busy (marked by ``middleware``); the others
    are idle, the longest-open of which is closed to let a newcomer in.
    """

    def __init__(self, limit: int) -> None:
        self._server: web.Server | None = None
        self._limit = limit
        self._open: dict[_Tracked, None] = {}  # oldest first
        self._busy: set[object] = set()
        self.evicted = 0
        self.refused = 0

    def attach(self, server: web.Server) -> None:
        """The aiohttp server to hand accepted connections to (``runner.server`` after setup)."""
        self._server = server

    def __call__(self) -> asyncio.BaseProtocol:
        server = self._server
        assert server is not None, "attach() the server before serving"
        live = [tracked for tracked in self._open if not tracked.evicted]
        if len(live) >= self._limit:
            idle = next((tracked for tracked in live if tracked.inner not in self._busy), None)
            if idle is None:
                self.refused += 1
                return _Refusal()
            idle.evict()
            self.evicted += 1
        tracked = _Tracked(server(), self)
        self._open[tracked] = None
        return tracked

    def forget(self, tracked: _Tracked) -> None:
        self._open.pop(tracked, None)

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def mark_busy(request: web.Request, handler: Handler) -> web.StreamResponse:
            protocol = request.protocol
            self._busy.add(protocol)
            try:
                return await handler(request)
            finally:
                self._busy.discard(protocol)

        return mark_busy


class LimitedSite(web.BaseSite):
    """A TCP site whose connections go through a ``ConnectionLimit``."""

    __slots__ = ("_host", "_limit", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limit: ConnectionLimit) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limit = limit

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._limit, self._host, self._port)
