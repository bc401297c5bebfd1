"""The aiohttp transport: https, reused connections, URLs that need re-encoding.

It hands back the same ``Answer`` as the lean transport, read within the same limits, and
maps aiohttp's errors to the check's reasons here, at its edge. Differences from aiohttp's
defaults, each so both transports give one answer one verdict:

- redirects are not followed here: the checker follows them for both transports alike;
- no automatic decompression: the judge inflates the body for both clients, in one place
  with one limit (1 MiB + 1 byte of output), so a gzip bomb gets one verdict;
- the body is read chunk by chunk and stops at 1 MiB + 1 byte and at MAX_CHUNKS chunks;
- at most MAX_INTERIM interim (1xx) answers: aiohttp reads them in a loop until the deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

import aiohttp
from aiohttp import client_exceptions, http_exceptions
from aiohttp.connector import Connection

from keepalive.probe.answer import (
    INCOMPLETE,
    INVALID,
    MAX_BODY,
    MAX_CHUNKS,
    MAX_FIELD,
    MAX_HEADERS,
    MAX_INTERIM,
    TOO_LARGE,
    Answer,
    Failure,
)
from keepalive.probe.lean import endpoints, reason_for_os_error
from keepalive.probe.resolver import AiohttpResolver, Resolver
from keepalive.probe.tls import tls_reason

# The header fields anything above a transport reads (the judge, the redirect loop).
_JUDGED = ("location", "content-encoding")


class _CountingProtocol:
    """aiohttp's protocol as ``ClientResponse.start`` sees it: each ``read()`` is one answer,
    interim ones included, so a server repeating ``100 Continue`` is cut off."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._answers = 0

    async def read(self) -> Any:
        self._answers += 1
        if self._answers > MAX_INTERIM + 1:
            raise Failure(INVALID)
        return await self._protocol.read()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)


class _CountingConnection:
    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.protocol = _CountingProtocol(connection.protocol)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class _BoundedResponse(aiohttp.ClientResponse):
    # Kept at start: a short answer is complete (and its connection released) when
    # session.get() returns, so the connection is gone by the time the checker looks.
    socket_transport: asyncio.BaseTransport | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        self.socket_transport = connection.transport
        try:
            return await super().start(cast(Connection, _CountingConnection(connection)))
        finally:
            # Only the status loop of start() sees the counting proxy; everything after it
            # (body, release, close) uses aiohttp's own objects (attributes set by start()).
            self._protocol = connection.protocol
            self._connection = connection


def reason_for(exc: BaseException) -> str:
    """Map an aiohttp exception to the short reason of SPEC section 5."""
    # Order matters: the specific aiohttp errors subclass the generic ones.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return tls_reason(exc.certificate_error)  # "TLS error: certificate expired", ...
    if isinstance(exc, ssl.SSLCertVerificationError):
        return tls_reason(exc)
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return reason_for_os_error(exc.os_error)
    # A reset before or during the answer surfaces as either of these, depending on timing.
    if isinstance(exc, (aiohttp.ServerDisconnectedError, ConnectionResetError)):
        return "connection reset"
    if isinstance(exc, aiohttp.ClientOSError):
        if isinstance(exc.__cause__, ConnectionResetError) or exc.errno in (104, 54):
            return "connection reset"
        return f"connection failed: {exc.strerror or 'network error'}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        # A body cut short is "incomplete"; a malformed one (chunk framing, trailers) is invalid,
        # as the lean client says.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (http_exceptions.ContentLengthError, http_exceptions.TransferEncodingError)):
            return INCOMPLETE
        return INVALID if isinstance(cause, http_exceptions.HttpProcessingError) else INCOMPLETE
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, client_exceptions.ClientResponseError):
        return INVALID
    if isinstance(exc, aiohttp.ClientError):
        return f"HTTP client error: {type(exc).__name__}"
    if isinstance(exc, OSError):
        return reason_for_os_error(exc)
    return f"unexpected error: {type(exc).__name__}"


class AiohttpTransport:
    """Any http(s) URL. Raises only Failure (and the caller's deadline)."""

    def __init__(
        self, resolver: Resolver, user_agent: str, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._resolver = resolver
        self._user_agent = user_agent
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._fresh: aiohttp.ClientSession | None = None
        self._reuse: aiohttp.ClientSession | None = None

    def handles(self, url: str, reuse: bool) -> bool:
        return True

    def _session(self, reuse: bool) -> aiohttp.ClientSession:
        if reuse:
            if self._reuse is None:
                self._reuse = self._new_session(force_close=False)
            return self._reuse
        if self._fresh is None:
            self._fresh = self._new_session(force_close=True)
        return self._fresh

    def _new_session(self, force_close: bool) -> aiohttp.ClientSession:
        # limit=0: the scheduler's semaphore bounds concurrency, not the pool. The resolver
        # caches, so aiohttp's own DNS cache is off.
        connector = aiohttp.TCPConnector(
            limit=0,
            force_close=force_close,
            ssl=self._ssl,
            use_dns_cache=False,
            resolver=AiohttpResolver(self._resolver),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # the overall deadline is the checker's
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            max_line_size=MAX_FIELD,
            max_field_size=MAX_FIELD,
            max_headers=MAX_HEADERS,
            response_class=_BoundedResponse,
        )

    async def close(self) -> None:
        for session in (self._fresh, self._reuse):
            if session is not None:
                await session.close()
        self._fresh = self._reuse = None

    async def fetch(self, url: str, reuse: bool, with_peer: bool = False) -> Answer:
        try:
            return await self._fetch(url, reuse, with_peer)
        except Failure:
            raise
        except Exception as exc:
            if isinstance(exc.__cause__, Failure):
                raise exc.__cause__ from None
            raise Failure(reason_for(exc)) from exc

    async def _fetch(self, url: str, reuse: bool, with_peer: bool) -> Answer:
        session = self._session(reuse)
        async with session.get(url, allow_redirects=False) as resp:
            peer, local = (None, None)
            if with_peer and isinstance(resp, _BoundedResponse):
                peer, local = endpoints(resp.socket_transport)
            headers = {name: resp.headers[name] for name in _JUDGED if name in resp.headers}
            if not 200 <= resp.status < 300:
                return Answer(resp.status, headers, b"", peer, local)
            if resp.content_length is not None and resp.content_length > MAX_BODY:
                raise Failure(TOO_LARGE)
            body = bytearray()
            chunks = 0
            # Piece by piece (one HTTP chunk at most each), so a huge or endless body stops at
            # the limit and 1-byte chunks stop at MAX_CHUNKS.
            while True:
                data, end_of_chunk = await resp.content.readchunk()
                if not data and not end_of_chunk:
                    break
                body += data
                if len(body) > MAX_BODY:
                    raise Failure(TOO_LARGE)
                chunks += end_of_chunk
                if chunks > MAX_CHUNKS:
                    raise Failure(INVALID)
        return Answer(resp.status, headers, bytes(body), peer, local)
