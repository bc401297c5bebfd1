"""Host names to addresses, bounded and isolated, for both transports (issue 9 defect 4).

The event loop's ``getaddrinfo`` runs in the loop's shared default executor; a resolver that
never answers keeps a thread busy per call, a check that times out does not free it, and
failures are not kept, so a few targets on a dead domain fill the pool and healthy host-name
targets then time out too. Here instead:

- each lookup runs on a daemon thread of its own (a stuck one never delays the interpreter's
  exit or ``Checker.close()``), at most ``max_threads`` counted at once;
- concurrent lookups of one name share one thread (in-flight de-duplication);
- an answer is kept ``ttl`` seconds, a failure ``negative_ttl`` seconds;
- a lookup gets ``lookup_timeout`` seconds; then it fails ("DNS lookup failed") and stops
  counting against ``max_threads``, so hung lookups can never take the threads healthy names
  need. While its thread still hangs, that name fails at once without a new thread, and at
  most ``max_hung`` hung threads exist: past that, new names fail at once too.

The lookup function is passed in (``socket.getaddrinfo`` by default), so tests can make one
name hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

# (family, type, proto, canonname, sockaddr): what getaddrinfo and aiohappyeyeballs speak.
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
Lookup = Callable[[str, int], Sequence[AddrInfo]]

DNS_TTL = 60.0  # as aiohttp's connector keeps answers
NEGATIVE_TTL = 10.0
LOOKUP_TIMEOUT = 5.0  # glibc's default time per try of a name server
MAX_CACHED = 65536


def is_ip_literal(host: str) -> bool:
    """An IPv4 or IPv6 address as written (no brackets): nothing to look up."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def system_lookup(host: str, port: int) -> Sequence[AddrInfo]:
    """The operating system's resolver (blocking; run on a resolver thread)."""
    return [
        (int(family), int(kind), proto, canon, tuple(sockaddr))
        for family, kind, proto, canon, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


class Resolver:
    """Use it from one event loop (the checker's). ``resolve`` raises ``socket.gaierror``."""

    def __init__(
        self,
        lookup: Lookup = system_lookup,
        *,
        ttl: float = DNS_TTL,
        negative_ttl: float = NEGATIVE_TTL,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        max_threads: int = 16,
        max_hung: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._lookup_timeout = lookup_timeout
        self._max_hung = max_hung
        self._clock = clock
        self._slots = asyncio.Semaphore(max_threads)
        self._cache: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._failed: dict[tuple[str, int], float] = {}  # name -> until when it fails at once
        self._hung: set[tuple[str, int]] = set()  # names whose thread outlived lookup_timeout
        self._inflight: dict[tuple[str, int], asyncio.Future[list[AddrInfo]]] = {}

    async def resolve(self, host: str, port: int) -> list[AddrInfo]:
        key = (host.lower(), port)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if self._failed.get(key, 0.0) > now:
            raise socket.gaierror(socket.EAI_NONAME, "lookup failed recently")
        if key in self._hung:
            raise socket.gaierror(socket.EAI_AGAIN, "an earlier lookup still hangs")
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._start(key))
            # Retrieved here so a failure nobody waits for any more is not logged as unretrieved.
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._inflight[key] = pending
        # shield: a caller's deadline must not cancel the lookup the other callers share.
        return await asyncio.shield(pending)

    async def _start(self, key: tuple[str, int]) -> list[AddrInfo]:
        try:
            if len(self._hung) >= self._max_hung:
                raise socket.gaierror(socket.EAI_AGAIN, "too many lookups hang")
            async with self._slots:
                thread = self._on_thread(key)
                try:
                    result = await asyncio.wait_for(asyncio.shield(thread), self._lookup_timeout)
                except TimeoutError:
                    self._hung.add(key)
                    thread.add_done_callback(lambda _: self._hung.discard(key))
                    raise socket.gaierror(socket.EAI_AGAIN, "lookup timed out") from None
        except BaseException:
            if len(self._failed) > MAX_CACHED:
                self._failed.clear()
            self._failed[key] = self._clock() + self._negative_ttl
            raise
        finally:
            self._inflight.pop(key, None)
        self._failed.pop(key, None)
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (self._clock() + self._ttl, result)
        return result

    def _on_thread(self, key: tuple[str, int]) -> asyncio.Future[list[AddrInfo]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AddrInfo]] = loop.create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())

        def deliver(result: list[AddrInfo] | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result or [])

        def run() -> None:
            result: list[AddrInfo] | None = None
            error: BaseException | None = None
            try:
                result = list(dict.fromkeys(self._lookup(*key)))
                if not result:
                    error = socket.gaierror(socket.EAI_NONAME, "no address")
            except OSError as exc:
                error = exc if isinstance(exc, socket.gaierror) else socket.gaierror(str(exc))
            except Exception as exc:  # a broken lookup function must still end the wait
                error = socket.gaierror(f"{type(exc).__name__}")
            # The loop may be closed by now (stopped while this lookup hung): nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, result, error)

        threading.Thread(target=run, name=f"resolve {key[0]}", daemon=True).start()
        return future

    def close(self) -> None:
        """Forget pending lookups: their threads end on their own, nobody waits for them."""
        for future in self._inflight.values():
            future.cancel()
        self._inflight.clear()


class AiohttpResolver(AbstractResolver):
    """aiohttp's connector resolving through the same bounded ``Resolver``."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await self._resolver.resolve(host, port)
        return [
            ResolveResult(
                hostname=host,
                host=str(sockaddr[0]),
                port=int(sockaddr[1]),
                family=fam,
                proto=proto,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for fam, _, proto, _, sockaddr in infos
            if family in (socket.AF_UNSPEC, fam)
        ]

    async def close(self) -> None:
        return None  # the Checker owns and closes the shared resolver
