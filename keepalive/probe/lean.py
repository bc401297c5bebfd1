"""A lean HTTP/1.1 GET on a fresh connection: the client of plain-http checks.

Why not aiohttp for these too: with a fresh connection per check, the HTTP client is most of a
check's CPU. aiohttp's general machinery (session, connector, request and response objects,
stream readers) costs about 0.5 ms of CPU per check on a 2-core machine; an ``asyncio.Protocol``
that writes one prebuilt request and parses one answer costs about 0.2 ms
(``bench/client_cost.py``). The checker uses this client only where it is enough: ``http://``
URLs without credentials, fresh connection (the default). aiohttp serves https, reused
connections, URLs it would have to re-encode, and redirects to any of those.

It speaks exactly what a health check needs: ``Connection: close``, a status line, header
fields, and a body framed by Content-Length, chunked transfer coding or the end of the
connection, never buffered past ``max_body``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024  # status line and header fields together
_MAX_CHUNK_LINE = 1024
DNS_TTL = 60.0


class Failure(Exception):
    """The server's answer is unusable; ``reason`` is the check's short reason (SPEC section 5)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated field keeps its last value
    body: bytes  # transfer coding removed; empty unless the status is 2xx


@dataclass(frozen=True, slots=True)
class Plan:
    """What one URL needs on the wire, worked out once per URL rather than once per check."""

    host: str  # as connect() takes it: no brackets around IPv6
    port: int
    numeric: bool  # an IP literal: no DNS lookup
    request: bytes


@functools.lru_cache(maxsize=65536)
def plan_for(url: str, user_agent: str) -> Plan | None:
    """The plan for GET ``url``, or None when this client does not handle it (https,
    credentials, characters that would need re-encoding): aiohttp then does."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme != "http" or not host or parts.username is not None or parts.password is not None:
        return None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # aiohttp would percent-encode anything else; leave those URLs (and IDN hosts) to it.
    if not (target.isascii() and target.isprintable() and " " not in target and host.isascii()):
        return None
    try:
        numeric = ipaddress.ip_address(host).version in (4, 6)
    except ValueError:
        numeric = False
    authority = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != 80:
        authority += f":{parts.port}"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n"
        "Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return Plan(host, port, numeric, request)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and header fields of an answer's head (without the blank line)."""
    lines = head.split(b"\r\n")
    status_line = lines[0]
    code = status_line[9:12]
    if not (status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) and code.isdigit() and len(code) == 3):
        raise Failure("invalid HTTP answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise Failure("invalid HTTP answer")
        headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
    return int(code), headers


_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class _Exchange(asyncio.Protocol):
    """One request and its answer on one connection; resolves ``done`` with an Answer or fails
    it with Failure or the connection's own error."""

    def __init__(self, request: bytes, done: asyncio.Future[Answer], max_body: int) -> None:
        self._request = request
        self._done = done
        self._max_body = max_body
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._framing = _HEAD
        self._status = 0
        self._headers: dict[str, str] = {}
        self._length = 0
        self._body = bytearray()  # chunked only: the decoded body so far

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        self._buffer += data
        try:
            self._advance()
        except Failure as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost then judges what arrived

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done.done():
            return
        if exc is not None:
            self._done.set_exception(exc)
        elif self._framing == _UNTIL_CLOSE:
            self._finish(bytes(self._buffer))
        elif self._framing == _HEAD:
            # Closed without a word is what aiohttp calls "Server disconnected".
            self._fail(Failure("invalid HTTP answer" if self._buffer else "connection reset"))
        else:
            self._fail(Failure("incomplete body"))

    def _finish(self, body: bytes) -> None:
        if not self._done.done():
            self._done.set_result(Answer(self._status, self._headers, body))
        self._close()

    def _fail(self, exc: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(exc)
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _too_large(self) -> Failure:
        return Failure(f"body larger than {self._max_body // (1024 * 1024)} MiB")

    def _advance(self) -> None:
        buffer = self._buffer
        while self._framing == _HEAD:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise Failure("invalid HTTP answer")
                return
            status, headers = parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._status, self._headers = status, headers
            if not 200 <= status < 300:
                # Only the status (and a redirect's Location) matters: no need for the body.
                self._finish(b"")
                return
            self._choose_framing(headers)
        if self._framing == _LENGTH:
            if len(buffer) >= self._length:
                self._finish(bytes(buffer[: self._length]))
        elif self._framing == _CHUNKED:
            self._dechunk()
        elif len(buffer) > self._max_body:
            raise self._too_large()

    def _choose_framing(self, headers: dict[str, str]) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._framing = _CHUNKED
        elif "content-length" in headers:
            text = headers["content-length"]
            if not text.isdigit():
                raise Failure("invalid HTTP answer")
            self._length = int(text)
            if self._length > self._max_body:
                raise self._too_large()
            self._framing = _LENGTH
        else:
            self._framing = _UNTIL_CLOSE

    def _dechunk(self) -> None:
        buffer, body = self._buffer, self._body
        pos = 0
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                if len(buffer) - pos > _MAX_CHUNK_LINE:
                    raise Failure("invalid HTTP answer")
                break
            size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16) if size_text.isalnum() else -1
            except ValueError:
                size = -1
            if size < 0:
                raise Failure("invalid HTTP answer")
            if size == 0:
                # Trailer fields may follow the last chunk; an empty line ends the message.
                if buffer.startswith(b"\r\n", line_end + 2) or buffer.find(b"\r\n\r\n", line_end) >= 0:
                    self._finish(bytes(body))
                    return
                break
            if len(body) + size > self._max_body:
                raise self._too_large()
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise Failure("invalid HTTP answer")
            body += buffer[line_end + 2 : data_end]
            pos = data_end + 2
        del buffer[:pos]


class Resolver:
    """Host names to addresses, each kept for DNS_TTL seconds (as aiohttp's connector does), so
    a check every second does not cost a lookup every second. Failures are not kept."""

    def __init__(self, ttl: float = DNS_TTL) -> None:
        self._ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[tuple[int, str]]]] = {}

    async def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        now = time.monotonic()
        hit = self._cache.get((host, port))
        if hit is not None and hit[0] > now:
            return hit[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[tuple[int, str]] = list(
            dict.fromkeys((int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos)
        )
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[(host, port)] = (now + self._ttl, addresses)
        return addresses


async def get(plan: Plan, resolver: Resolver, max_body: int) -> Answer:
    """Send ``plan``'s request on a new connection and return the answer. Raises Failure, OSError
    (refused, reset, DNS as socket.gaierror); the caller bounds the time."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Answer] = loop.create_future()

    def exchange() -> _Exchange:
        return _Exchange(plan.request, done, max_body)

    transport: asyncio.BaseTransport
    if plan.numeric:
        transport, _ = await loop.create_connection(exchange, plan.host, plan.port)
    else:
        addresses = await resolver.resolve(plan.host, plan.port)
        transport = await _connect_any(loop, exchange, addresses, plan.port)
    try:
        return await done
    finally:
        if not done.done():
            done.cancel()  # cancelled by the deadline: nobody will read what comes next
        transport.close()


async def _connect_any(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    addresses: list[tuple[int, str]],
    port: int,
) -> asyncio.BaseTransport:
    # Each address in the resolver's order until one accepts, as a browser without Happy
    # Eyeballs would; the check's overall deadline bounds the whole attempt.
    error: OSError | None = None
    for family, address in addresses:
        try:
            transport, _ = await loop.create_connection(factory, address, port, family=family)
            return transport
        except OSError as exc:
            error = exc
    raise error if error is not None else OSError("no address to connect to")
