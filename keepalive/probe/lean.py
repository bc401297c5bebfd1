"""The lean transport: one HTTP/1.1 GET on a fresh connection, parsed by llhttp (httptools).

Why not aiohttp for these too: with a fresh connection per check, the HTTP client is most of a
check's CPU. aiohttp's general machinery (session, connector, request and response objects,
stream readers) costs about 0.5 ms of CPU per check on a 2-core machine; an ``asyncio.Protocol``
that writes one prebuilt request and feeds the answer to llhttp costs about 0.2 ms
(``bench/client_cost.py``). The checker uses it only where it is enough: ``http://`` URLs
without credentials, fresh connection (the default). aiohttp serves https, reused
connections and URLs it would have to re-encode.

llhttp is the parser aiohttp uses too, with the same leniencies (bare LF line ends, obs-fold,
spaces after a chunk size) and the same limits on header fields, so both clients give one
answer one verdict (``tests/test_probe_differential.py``). On top of llhttp every part of an
answer is bounded here, in bytes and in parser work: the head (1xx answers included), the
number of interim answers, header and trailer fields, chunks, the body, and all bytes read.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import aiohappyeyeballs
import httptools

from keepalive.probe.answer import (
    INCOMPLETE,
    INVALID,
    MAX_BODY,
    MAX_CHUNKS,
    MAX_FIELD,
    MAX_HEAD,
    MAX_HEADERS,
    MAX_INTERIM,
    MAX_WIRE,
    TOO_LARGE,
    Answer,
    Failure,
)
from keepalive.probe.resolver import AddrInfo, Resolver, is_ip_literal

# RFC 8305's recommended delay before racing the next address (aiohttp uses the same).
HAPPY_EYEBALLS_DELAY = 0.25


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
    numeric = is_ip_literal(host)
    authority = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != 80:
        authority += f":{parts.port}"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n"
        "Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return Plan(host, port, numeric, request)


# The header fields read here (framing) and above a transport (the judge, the redirect loop).
_KEPT = frozenset({b"content-length", b"transfer-encoding", b"content-encoding", b"location"})


class _Stop(Exception):
    """Stops llhttp: the answer is settled (a non-2xx head, or a second answer after it)."""


class _Exchange(asyncio.Protocol):
    """One request and its answer on one connection; resolves ``done`` with an Answer or a
    failure's reason (a str), or, for an error that is no OSError, fails it with that error.
    Also llhttp's callback target.

    The parser holds bound methods of this object, and this object the parser: a reference
    cycle, which left every check's exchange to the cyclic garbage collector (about 2 % of a
    check's instructions went to gc). ``connection_lost``, the last call of every connection,
    drops the parser, so reference counting frees both at once. For the same reason a failure
    travels as its reason, not as an exception object: one kept in ``done`` would refer back,
    through its traceback's frames, to this object and to ``done`` itself."""

    # httptools looks each callback up with getattr(..., None): a missing one raised (and
    # formatted) an AttributeError inside every parser's construction. None means "no callback".
    on_message_begin = None
    on_chunk_complete = None

    def __init__(self, request: bytes, done: asyncio.Future[Answer | str], with_peer: bool) -> None:
        self._request = request
        self._done = done
        self._with_peer = with_peer
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        # What aiohttp's response parser allows too (its non-debug mode).
        self._parser.set_dangerous_leniencies(
            lenient_headers=True, lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True
        )
        self._received = 0
        self._in_head = True
        self._interim = 0
        self._fields = 0
        self._headers: dict[str, str] = {}
        self._until_close = False
        self._body = bytearray()
        self._chunks = 0
        self._reason_length = 0
        self._status = 0  # the final answer's, set once its head is complete
        self._complete = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._done.done() or self._parser is None:
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # a 101 answer was finished in on_headers_complete
        except httptools.HttpParserCallbackError as exc:
            # No local name for the cause: this frame would keep it, and its traceback this frame.
            if not isinstance(exc.__context__, _Stop):
                self._fail(exc.__context__.reason if isinstance(exc.__context__, Failure) else INVALID)
        except httptools.HttpParserError:
            # Also bytes after a complete answer in the same read (aiohttp rejects those too);
            # what arrives in a later read is never looked at.
            self._fail(INVALID)
        if self._complete:
            self._finish(bytes(self._body))
        if self._done.done():
            return
        # Checked after feeding: llhttp is linear, so one packet past a limit costs little.
        if (self._in_head and self._received > MAX_HEAD) or self._received > MAX_WIRE:
            self._fail(INVALID)

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost then judges what arrived

    def connection_lost(self, exc: Exception | None) -> None:
        self._parser = None  # the cycle (see the class's docstring); nothing is fed after this
        if self._done.done():
            return
        if isinstance(exc, OSError):
            self._fail(reason_for_os_error(exc))
        elif exc is not None:
            self._done.set_exception(exc)  # not ours to name: the checker reports it as unexpected
        elif self._in_head:
            # Closed without a word is what aiohttp calls "Server disconnected".
            self._fail(INVALID if self._received else "connection reset")
        elif self._until_close:
            self._finish(bytes(self._body))
        else:
            self._fail(INCOMPLETE)

    # -- llhttp callbacks (an exception raised here stops the parser) -------------------------

    # Bytes after the complete answer in the same read: llhttp reads them as the next answer.
    # As aiohttp: a valid status line there ends parsing (that answer is ignored), anything
    # else is a parse error (invalid HTTP answer).

    def on_status(self, reason: bytes) -> None:
        if self._complete:
            raise _Stop
        self._reason_length += len(reason)  # llhttp may hand the reason phrase over in pieces
        if self._reason_length > MAX_FIELD:
            raise Failure(INVALID)

    def on_header(self, name: bytes, value: bytes) -> None:
        # As aiohttp: a field's name and value together within MAX_FIELD; in the head, no NUL
        # (RFC 9110 5.5; aiohttp never looks into trailers, so neither does this).
        # The head's count is checked once it ends (MAX_HEAD bounds it until then: one test
        # per field less on every check); trailers, which are rare, are counted as they come.
        self._fields += 1
        if self._complete:
            raise _Stop
        if len(name) + len(value) > MAX_FIELD:
            raise Failure(INVALID)
        if self._in_head:
            # ``0 in``, not ``b"\0" in``: CPython first tries a bytes operand as an integer,
            # raising and discarding a TypeError each time (about 2 % of a check's instructions).
            if 0 in value:
                raise Failure(INVALID)
            key = name.lower()
            if key in _KEPT:  # decoding only what is read costs less per check
                self._headers[key.decode("latin-1")] = value.strip().decode("latin-1")
        elif self._fields > MAX_HEADERS:  # header and trailer fields together, as aiohttp counts
            raise Failure(INVALID)

    def on_headers_complete(self) -> None:
        if self._complete:
            raise _Stop
        if self._fields > MAX_HEADERS:
            raise Failure(INVALID)
        assert self._parser is not None  # set until connection_lost, which never runs inside a feed
        status = self._status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self._in_head = False
        if not 200 <= status < 300:
            # Only the status (and a redirect's Location) matters: no need for the body.
            self._finish(b"")
            raise _Stop
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise Failure(TOO_LARGE)
        # Chunked framing only when chunked is the last coding; otherwise the body ends with
        # the connection (RFC 9112 6.3), as llhttp reads it.
        codings = self._headers.get("transfer-encoding", "").lower().split(",")
        self._until_close = length is None and codings[-1].strip() != "chunked"

    def on_chunk_header(self) -> None:
        self._chunks += 1
        if self._chunks > MAX_CHUNKS:
            raise Failure(INVALID)

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > MAX_BODY:
            raise Failure(TOO_LARGE)

    def on_message_complete(self) -> None:
        if self._in_head:  # an interim answer ended: start over for the next one
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise Failure(INVALID)
            self._headers = {}
            self._fields = 0
            self._reason_length = 0
            return
        self._complete = True  # finished once llhttp has seen the rest of this read

    # -- the outcome -----------------------------------------------------------------------

    def _answer(self, body: bytes) -> Answer:
        peer, local = endpoints(self._transport) if self._with_peer else (None, None)
        return Answer(self._status, self._headers, body, peer, local)

    def _finish(self, body: bytes) -> None:
        if not self._done.done():
            self._done.set_result(self._answer(body))
        self._close()

    def _fail(self, reason: str) -> None:
        if not self._done.done():
            self._done.set_result(reason)
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def endpoints(transport: asyncio.BaseTransport | None) -> tuple[tuple[str, int] | None, str | None]:
    """The peer (address, port) and our own address of a connection, when known."""
    if transport is None:
        return None, None
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    return (
        (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
        str(local[0]) if isinstance(local, tuple) else None,
    )


def reason_for_os_error(exc: OSError) -> str:
    """The reason for a connection's OS error (both transports use it)."""
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, ConnectionResetError) or exc.errno == errno.ECONNRESET:
        return "connection reset"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "timeout"
    return f"connection failed: {exc.strerror or type(exc).__name__}"


class LeanTransport:
    """Plain-http GETs on a fresh connection. Raises only Failure (and the caller's deadline)."""

    def __init__(self, resolver: Resolver, user_agent: str) -> None:
        self._resolver = resolver
        self._user_agent = user_agent

    def handles(self, url: str, reuse: bool) -> bool:
        return not reuse and plan_for(url, self._user_agent) is not None

    async def fetch(self, url: str, reuse: bool, with_peer: bool = False) -> Answer:
        # One coroutine, not a fetch around a _get: every layer is crossed again on each resume.
        plan = plan_for(url, self._user_agent)
        if plan is None:
            raise Failure("invalid URL")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Answer | str] = loop.create_future()

        def exchange() -> _Exchange:
            return _Exchange(plan.request, done, with_peer)

        transport: asyncio.BaseTransport
        try:
            if plan.numeric:
                # [0]: the protocol in a local of this frame would outlive a failure (see _Exchange).
                transport = (await loop.create_connection(exchange, plan.host, plan.port))[0]
            else:
                infos = await self._resolver.resolve(plan.host, plan.port)
                transport = await _connect(loop, exchange, infos)
        except OSError as exc:
            raise Failure(reason_for_os_error(exc)) from exc
        try:
            outcome = await done
        finally:
            if not done.done():
                done.cancel()  # cancelled by the deadline: nobody will read what comes next
            transport.close()
        if isinstance(outcome, str):
            raise Failure(outcome)
        return outcome

    async def close(self) -> None:
        return None


async def _connect(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], _Exchange], infos: list[AddrInfo]
) -> asyncio.BaseTransport:
    if len(infos) == 1:  # the common case: the loop's own connect is the cheapest
        family, _, _, _, sockaddr = infos[0]
        transport, _ = await loop.create_connection(factory, sockaddr[0], sockaddr[1], family=family)
        return transport
    # Several addresses: race them as RFC 8305 says, so a dead first address (broken IPv6, a
    # dropped round-robin node) costs 250 ms instead of the whole check (issue 9 defect 5).
    sock = await aiohappyeyeballs.start_connection(
        infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
    )
    try:
        transport, _ = await loop.create_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport
