"""Host names to addresses, bounded and isolated, for both transports (issue 9 defect 4).

The event loop's ``getaddrinfo`` runs in the loop's shared default executor; a resolver that
never answers keeps a thread busy per call, a check that times out does not free it, and
failures are not kept, so a few targets on a dead domain fill the pool and healthy host-name
targets then time out too. Here instead:

- each lookup runs on a daemon thread of its own, at most ``max_threads`` at once (a stuck
  one never blocks the interpreter's exit or ``Checker.close()``);
- concurrent lookups of one name share one thread (in-flight de-duplication);
- an answer is kept ``ttl`` seconds, a failure ``negative_ttl`` seconds;
- a name whose last lookup failed or hung is "suspect" and may hold at most
  ``max_suspect_threads`` of the threads, so failing names can never take the threads that
  healthy names need; a lookup still pending after ``hung_after`` seconds fails at once for
  every new caller instead of queueing behind it.

The lookup function is passed in (``socket.getaddrinfo`` by default), so tests can make one
name hang.
"""

from __future__ import annotations

import asyncio
import contextlib
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
HUNG_AFTER = 10.0
MAX_CACHED = 65536


def system_lookup(host: str, port: int) -> Sequence[AddrInfo]:
    """The operating system's resolver (blocking; run on a resolver thread)."""
    return [
        (int(family), int(kind), proto, canon, tuple(sockaddr))
        for family, kind, proto, canon, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]


class Resolver:
    """Resolves on the running loop; create it inside that loop. Raises ``socket.gaierror``."""

    def __init__(
        self,
        lookup: Lookup = system_lookup,
        *,
        ttl: float = DNS_TTL,
        negative_ttl: float = NEGATIVE_TTL,
        hung_after: float = HUNG_AFTER,
        max_threads: int = 16,
        max_suspect_threads: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._hung_after = hung_after
        self._clock = clock
        self._slots = asyncio.Semaphore(max_threads)
        self._suspect_slots = max_suspect_threads
        self._suspect_busy = 0
        self._cache: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._failed: dict[tuple[str, int], float] = {}  # name -> until when it fails at once
        self._suspect: set[tuple[str, int]] = set()
        self._inflight: dict[tuple[str, int], tuple[float, asyncio.Future[list[AddrInfo]]]] = {}
        self.lookups = 0  # lookups started on a thread (tests assert de-duplication with it)

    async def resolve(self, host: str, port: int) -> list[AddrInfo]:
        key = (host.lower(), port)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if self._failed.get(key, 0.0) > now:
            raise socket.gaierror(socket.EAI_NONAME, "lookup failed recently")
        pending = self._inflight.get(key)
        if pending is None:
            task = asyncio.ensure_future(self._start(key))
            # Retrieved here so a failure nobody waits for any more is not logged as unretrieved.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            pending = (now, task)
            self._inflight[key] = pending
        elif now - pending[0] > self._hung_after:
            self._suspect.add(key)
            raise socket.gaierror(socket.EAI_AGAIN, "lookup still pending")
        # shield: a caller's deadline must not cancel the lookup the other callers share.
        return await asyncio.shield(pending[1])

    async def _start(self, key: tuple[str, int]) -> list[AddrInfo]:
        suspect = key in self._suspect
        try:
            if suspect:
                if self._suspect_busy >= self._suspect_slots:
                    raise socket.gaierror(socket.EAI_AGAIN, "too many failing lookups pending")
                self._suspect_busy += 1
            try:
                async with self._slots:
                    result = await self._on_thread(key)
            finally:
                if suspect:
                    self._suspect_busy -= 1
        except BaseException:
            self._suspect.add(key)
            self._failed[key] = self._clock() + self._negative_ttl
            raise
        finally:
            self._inflight.pop(key, None)
        self._suspect.discard(key)
        self._failed.pop(key, None)
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (self._clock() + self._ttl, result)
        return result

    def _on_thread(self, key: tuple[str, int]) -> asyncio.Future[list[AddrInfo]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AddrInfo]] = loop.create_future()
        self.lookups += 1

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
        for _, future in self._inflight.values():
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
