"""One health check (SPEC section 5): GET the URL and judge the answer. Never raises.

A check passes only on HTTP 2xx with a JSON object body whose "status" is an expected value,
within the target's timeout (connect, redirects and the whole body together) and, when set,
its latency limit. Every failure carries a short reason an operator can act on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

from keepalive import __version__
from keepalive.probe import lean as http1
from keepalive.targets import Target

MAX_BODY = 1024 * 1024
TOO_LARGE = "body larger than 1 MiB"
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"keepalive-monitor/{__version__}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    reason: str | None  # None when ok
    latency_ms: float | None  # time to the whole answer; None when there was no answer
    at: float  # wall-clock time the check started (epoch seconds)


def printable(text: str) -> str:
    """``text`` safe to log, store and send: control characters (C0, DEL and C1, whose U+009B
    is a terminal's CSI) become spaces and lone surrogates (legal in JSON, not encodable as
    UTF-8) become U+FFFD."""
    return "".join(
        " " if ch < " " or "\x7f" <= ch <= "\x9f" else "\ufffd" if "\ud800" <= ch <= "\udfff" else ch
        for ch in text
    )


def _status_reason(value: object) -> str:
    shown = printable(value) if isinstance(value, str) else json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f'status is "{shown}"' if isinstance(value, str) else f"status is {shown}"


def judge_body(body: bytes, expect: tuple[str, ...]) -> str | None:
    """The failure reason for a 2xx body, or None when it is healthy."""
    try:
        data = json.loads(body)
    except ValueError:
        return "invalid JSON"
    if not isinstance(data, dict):
        return "body is not a JSON object"
    if "status" not in data:
        return 'no "status" field'
    status = data["status"]
    if status not in expect:
        return _status_reason(status)
    return None


def _connector_reason(exc: aiohttp.ClientConnectorError) -> str:
    err = exc.os_error
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError):
        return "timeout"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    return f"connection failed: {err.strerror or type(err).__name__}"


def reason_for(exc: BaseException) -> str:
    """Map a client exception to the short reason of SPEC section 5."""
    # Order matters: the specific aiohttp errors subclass the generic ones.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, http1.Failure):
        return exc.reason
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connector_reason(exc)
    # A reset before or during the answer surfaces as either of these, depending on timing.
    if isinstance(exc, (aiohttp.ServerDisconnectedError, ConnectionResetError)):
        return "connection reset"
    if isinstance(exc, aiohttp.ClientOSError):
        if isinstance(exc.__cause__, ConnectionResetError) or exc.errno in (104, 54):
            return "connection reset"
        return f"connection failed: {exc.strerror or 'network error'}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "incomplete body"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid HTTP answer"
    if isinstance(exc, aiohttp.ClientError):
        return f"HTTP client error: {type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or type(exc).__name__}"
    return f"unexpected error: {type(exc).__name__}"


class Checker:
    """Runs checks on the running event loop. Create and close it inside that loop.

    Plain-http targets on a fresh connection (the default) go through the lean client of
    ``keepalive.http1``, everything else through aiohttp; ``lean=False`` sends all through
    aiohttp (the tests run every reason both ways)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, lean: bool = True) -> None:
        self._ssl = ssl_context if ssl_context is not None else True
        self._lean = lean
        self._resolver = http1.Resolver()
        self._fresh: aiohttp.ClientSession | None = None
        self._reuse: aiohttp.ClientSession | None = None

    def _session(self, reuse: bool) -> aiohttp.ClientSession:
        if reuse:
            if self._reuse is None:
                self._reuse = self._new_session(force_close=False)
            return self._reuse
        if self._fresh is None:
            self._fresh = self._new_session(force_close=True)
        return self._fresh

    def _new_session(self, force_close: bool) -> aiohttp.ClientSession:
        # limit=0: the scheduler's semaphore bounds concurrency, not the pool.
        connector = aiohttp.TCPConnector(limit=0, force_close=force_close, ssl=self._ssl, ttl_dns_cache=60)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # the overall deadline is ours
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            trust_env=False,
        )

    async def close(self) -> None:
        for session in (self._fresh, self._reuse):
            if session is not None:
                await session.close()
        self._fresh = self._reuse = None

    async def check(self, target: Target) -> CheckResult:
        """Check ``target`` once. Returns a result for every outcome; cancellation propagates."""
        at = time.time()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(target.timeout):
                reason = await self._fetch(target)
        except Exception as exc:
            return CheckResult(False, reason_for(exc), None, at)
        latency = (loop.time() - started) * 1000.0
        if reason is None and target.max_latency_ms is not None and latency > target.max_latency_ms:
            reason = f"slow: {latency:.0f} ms > {target.max_latency_ms:.0f} ms"
        return CheckResult(reason is None, reason, latency, at)

    async def _fetch(self, target: Target) -> str | None:
        if self._lean and not target.reuse_connection:
            plan = http1.plan_for(target.url, USER_AGENT)
            if plan is not None:
                return await self._fetch_lean(target.url, plan, target.expect_status)
        reuse = target.reuse_connection
        return await self._fetch_aiohttp(target.url, reuse, MAX_REDIRECTS, target.expect_status)

    async def _fetch_lean(self, url: str, plan: http1.Plan, expect: tuple[str, ...]) -> str | None:
        for followed in range(MAX_REDIRECTS + 1):
            answer = await http1.get(plan, self._resolver, MAX_BODY)
            location = answer.headers.get("location") if answer.status in _REDIRECTS else None
            if not location:
                return judge_answer(answer, expect)
            if followed == MAX_REDIRECTS:
                return "too many redirects"
            url = urljoin(url, location)
            next_plan = http1.plan_for(url, USER_AGENT)
            if next_plan is None:  # e.g. a redirect to https: aiohttp takes it from here
                return await self._fetch_aiohttp(url, False, MAX_REDIRECTS - followed - 1, expect)
            plan = next_plan
        raise AssertionError("unreachable: the loop returns on its last turn")

    async def _fetch_aiohttp(
        self, url: str, reuse: bool, redirects_left: int, expect: tuple[str, ...]
    ) -> str | None:
        session = self._session(reuse)
        # aiohttp fails when the count of redirects reaches max_redirects (and 0 means no limit),
        # so it is given one more than the number it may follow.
        async with session.get(url, allow_redirects=True, max_redirects=redirects_left + 1) as resp:
            if not 200 <= resp.status < 300:
                return f"HTTP {resp.status}"
            if resp.content_length is not None and resp.content_length > MAX_BODY:
                return TOO_LARGE
            body = bytearray()
            # Read in chunks so a huge or endless body is cut at the limit, never buffered whole.
            while chunk := await resp.content.read(_CHUNK):
                body += chunk
                if len(body) > MAX_BODY:
                    return TOO_LARGE
        return judge_body(bytes(body), expect)


def judge_answer(answer: http1.Answer, expect: tuple[str, ...]) -> str | None:
    """The failure reason for a lean client's answer, or None when it is healthy."""
    if not 200 <= answer.status < 300:
        return f"HTTP {answer.status}"
    body = answer.body
    encoding = answer.headers.get("content-encoding", "identity").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        # We asked for identity; a server that compresses anyway is still understood, within
        # the same 1 MiB limit on what the body expands to.
        try:
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
            body = inflater.decompress(body, MAX_BODY + 1)
        except zlib.error:
            try:  # "deflate" is often sent raw, without the zlib wrapper
                body = zlib.decompressobj(-zlib.MAX_WBITS).decompress(answer.body, MAX_BODY + 1)
            except zlib.error:
                return "invalid HTTP answer"
        if len(body) > MAX_BODY:
            return TOO_LARGE
    return judge_body(body, expect)
