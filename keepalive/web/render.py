"""Answers built off the checking loop, once per snapshot, shared by every concurrent request.

At 10,000 targets one /metrics exposition takes about half a second of CPU; built on the
event loop it delayed every check due meanwhile (76 false timeouts, 5 false DOWN alerts with
two scrapers). Here each answer is built in one worker thread from an immutable snapshot:
- one build at a time for the whole endpoint (a single worker), so scrapers cannot stack up
  CPU against the checks;
- a request that finds a build of the same answer under way waits for that build instead of
  starting another;
- a finished answer is served again until the snapshot changes or ``max_age`` passes.

The thread still takes the GIL, but Python hands it back to the loop every few milliseconds
(sys.getswitchinterval, 5 ms), so the loop is delayed by milliseconds, not by the build.
Two things a thread cannot hand back are kept short: one long C call (so JSON is encoded
per target, see keepalive.web.app) and the garbage collector, which stops every thread. A
build makes ~100,000 short-lived objects at 10,000 targets, enough to set off full
collections; they hold no cycles and die by reference counting when the build ends, so the
collector is paused while a build runs (measured: the worst loop delay during a /metrics
build at 10,000 targets went from 30 ms to 15 ms).

Handing the GIL back is not enough when builds never stop: at 10,000 targets the snapshot
changes every second, and a scraper each second kept the render thread busy 50-90 % of the
time, holding the GIL in 76 % of py-spy's samples and pushing the loop's schedule lag p99 past
0.1 s (bench.stress). So an answer that took d seconds to build is also served, from an older
snapshot, for REUSE_FACTOR x d after it was finished (never longer than MAX_STALE): the thread
then works at most a tenth of the time per kind of answer. A cheap answer
(100 targets: a few ms) is still rebuilt from every new snapshot.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

REUSE_FACTOR = 9.0
MAX_STALE = 10.0


@dataclass(frozen=True, slots=True)
class Rendered:
    """A finished answer: its bytes and headers (Content-Type, maybe Content-Encoding)."""

    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Entry:
    source: object  # the snapshot the answer was built from; compared by identity
    started: float
    future: asyncio.Future[Rendered] = field(init=False)
    # Set by the render thread when the build ends: its cost and when it was finished.
    cost: float = 0.0
    finished: float = 0.0


def _without_collections(build: Callable[[], Rendered]) -> Rendered:
    # One worker thread, so no other build can switch the collector back on meanwhile.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return build()
    finally:
        if was_enabled:
            gc.enable()


class RenderCache:
    """Builds each kind of answer in one worker thread, at most once per snapshot and max_age."""

    def __init__(
        self, max_age: float = 1.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 16
    ) -> None:
        self._max_age = max_age
        # Each entry may hold a 7 MB answer (10,000 targets); the kinds in use are a handful.
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keepalive-web-render")
        self.builds = 0  # how many builds ran; tests read it to see sharing and caching work

    async def get(self, key: Hashable, source: object, build: Callable[[], Rendered]) -> Rendered:
        """The answer ``key`` for ``source``: cached, shared with a build under way, or built now.

        ``build`` must read nothing but ``source`` (and other immutable values): it runs in a
        thread while the loop keeps changing the monitor.
        """
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and (not entry.future.done() or self._fresh(entry, source, now)):
            # shield: a client that goes away must not cancel a build others are waiting for.
            return await asyncio.shield(entry.future)
        loop = asyncio.get_running_loop()
        self.builds += 1
        entry = _Entry(source, now)
        entry.future = loop.run_in_executor(self._executor, self._timed, entry, build)
        future = entry.future
        self._entries.pop(key, None)
        self._entries[key] = entry  # newest last
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]
        return await asyncio.shield(future)

    def _timed(self, entry: _Entry, build: Callable[[], Rendered]) -> Rendered:
        started = self._clock()
        try:
            return _without_collections(build)
        finally:
            entry.finished = self._clock()
            entry.cost = entry.finished - started

    def _fresh(self, entry: _Entry, source: object, now: float) -> bool:
        if entry.future.cancelled() or entry.future.exception() is not None:
            return False  # a failed build is tried again by the next request
        if entry.source is source and now - entry.started < self._max_age:
            return True
        # An expensive answer is served a while from an older snapshot (see the module doc).
        return now - entry.finished < min(MAX_STALE, REUSE_FACTOR * entry.cost)

    def close(self) -> None:
        """Stop the worker; a build under way finishes in the background and is dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)
