"""``GET /api/events``: the monitor's changes pushed to open pages as Server-Sent Events.

How it stays off the checking loop's back:
- **Publishing costs a dict store.** After each check the engine calls ``EventHub.checked``
  (runtime, status before): the runtime is kept in a dict keyed by target name, so ten checks
  of one target before the next flush are sent once (coalesced per target). A state change
  is also kept in a short per-target list (the detail view's "recent changes").
- **One build per flush, for every client.** Every ``flush_interval`` (0.25 s) the hub turns
  what was published into ONE event, serialised once in its own worker thread, and hands
  the same bytes to every open stream. The cost is per flush, not per client and check.
- **A slow client is dropped, never waited for.** Each stream has a bounded queue of events
  (``MAX_QUEUED``); a client that has not taken them (its socket is full, so its writer is
  stuck in a write) is cut with a reset when the queue is full. Its browser reconnects.
- **Resume or reset.** Each event has an id ``<run>.<n>``; the last ``RING_SIZE`` events are
  kept, so a reconnect carrying ``Last-Event-ID`` gets what it missed. When the id is from
  another run, too old, or absent, the stream opens with a ``reset`` event: the page then
  fetches ``/api/status`` (gzip, built once per snapshot off the loop) and applies the
  events that follow on top (newest ``last_check`` wins).
- **No gzip on the stream**: an event must reach the browser as soon as it is written, so a
  compressed stream would need a full flush per event (most of the gain lost, and proxies
  buffer compressed streams); the events are small (the rows that changed); the large first
  picture is ``/api/status``, which is compressed.
- **Its own cap**: at most ``max_streams`` (100) open streams; past it, 503 with
  ``Retry-After``. The web's connection cap (256) so keeps 156 for scrapes and pages: open
  streams are busy connections, which the cap never closes to make room.

Events (each ``data`` is one JSON line):
    reset     {"reason": ...}: fetch /api/status afresh (first connection, too far behind,
              or a reload changed the targets)
    update    {"targets": [row, ...], "changes": [change, ...], "monitor": {...},
               "channels": [...], "silences": [...]}; rows as in /api/status (no history);
               "monitor"/"channels"/"silences" at most every 5 s; a change is
               {"target", "from", "to", "at", "reason"}
    comment   ``: ping`` every ``ping_interval`` (15 s) so proxies keep the stream open
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from keepalive.engine.runtime import TargetRuntime, view_of
from keepalive.engine.snapshot import (
    MonitorSnapshot,
    TargetSnapshot,
    channel_json,
    monitor_json,
    silence_json,
    target_json,
)
from keepalive.events import iso
from keepalive.state import Status

log = logging.getLogger("keepalive.web")

MAX_STREAMS = 100
FLUSH_INTERVAL = 0.25
PING_INTERVAL = 15.0
# 64 events of 0.25 s: a page that lost its connection for up to ~16 s resumes where it was.
RING_SIZE = 64
# Events a stream may have waiting: ~8 s behind at one event per flush, then it is dropped.
MAX_QUEUED = 32
# Keep building events this long after the last stream closed, so its reconnect can resume.
RESUME_GRACE = 30.0
# The monitor summary (status, outbox, lag, channels) goes out this often: it needs a full
# snapshot, ~20 ms of loop time at 10,000 targets; every second it added ~20 ms to the
# schedule lag's p99 with a page open (bench.page). The page counts states from its rows.
SUMMARY_INTERVAL = 5.0
# Per target, the state changes the detail view lists (since the monitor started).
CHANGES_KEPT = 20
# A browser waits this long before reconnecting (the SSE "retry" field).
RETRY_MS = 2000
_COMPACT = (",", ":")


class SnapshotSource(Protocol):
    def snapshot(self, include_history: bool = False) -> MonitorSnapshot: ...


@dataclass(frozen=True, slots=True)
class Change:
    """One state change of one target."""

    target: str
    old: Status
    new: Status
    at: float | None
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "from": self.old.value,
            "to": self.new.value,
            "at": iso(self.at),
            "reason": self.reason,
        }


@dataclass(slots=True, eq=False)  # kept in a set, by identity
class Stream:
    """One open /api/events connection: the events waiting for it."""

    queue: deque[bytes] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False  # fell too far behind: cut with a reset
    ended: bool = False  # the server is stopping: closed cleanly
    # Cuts the connection at once: its writer may be stuck in a write the client never takes.
    on_drop: Callable[[], None] | None = None

    def push(self, event: bytes) -> None:
        if len(self.queue) >= MAX_QUEUED:
            # It has not taken the last MAX_QUEUED events: its writer is stuck in a write.
            if not self.dropped:
                self.dropped = True
                if self.on_drop is not None:
                    self.on_drop()
            self.queue.clear()
        else:
            self.queue.append(event)
        self.wake.set()

    def take(self) -> list[bytes]:
        events = list(self.queue)
        self.queue.clear()
        self.wake.clear()
        return events


def frame(event: str, data: str, event_id: str | None = None) -> bytes:
    """One SSE event. ``data`` is one line (compact JSON never holds a raw newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _build_update(
    rows: Sequence[TargetSnapshot],
    changes: Sequence[Change],
    snapshot: MonitorSnapshot | None,
) -> str:
    # Runs in the hub's worker thread: reads only immutable snapshots.
    document: dict[str, Any] = {
        "targets": [target_json(row, include_history=False) for row in rows],
        "changes": [change.as_json() for change in changes],
    }
    if snapshot is not None:
        document["monitor"] = monitor_json(snapshot)
        document["channels"] = [channel_json(c) for c in snapshot.channels]
        document["silences"] = [silence_json(s, snapshot.taken_at) for s in snapshot.silences]
    return json.dumps(document, separators=_COMPACT)


class EventHub:
    """Collects what the engine publishes and fans it out to the open streams."""

    def __init__(
        self,
        source: SnapshotSource | None = None,
        *,
        max_streams: int = MAX_STREAMS,
        flush_interval: float = FLUSH_INTERVAL,
        ping_interval: float = PING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self.max_streams = max_streams
        self.ping_interval = ping_interval
        self._flush_interval = flush_interval
        self._clock = clock
        self._run = secrets.token_hex(4)  # ids from another run of the monitor never resume
        self._sequence = 0
        self._ring: deque[tuple[int, bytes]] = deque(maxlen=RING_SIZE)
        self._pending: dict[str, TargetRuntime | TargetSnapshot] = {}
        self._changes: list[Change] = []
        self._recent: dict[str, deque[Change]] = {}
        self.streams: set[Stream] = set()
        self._last_stream_at = -RESUME_GRACE
        self._last_summary = -SUMMARY_INTERVAL
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self.events_built = 0  # tests and the bench read it

    # ------------------------------------------------------------------ publishing (on the loop)

    def checked(self, rt: TargetRuntime, before: Status) -> None:
        """The engine's hook, after each handled check result: O(1), no I/O, no serialising."""
        name = rt.target.name
        self._pending[name] = rt
        after = rt.observed.state.status
        if after is not before:
            self._record(Change(name, before, after, rt.observed.last_check, rt.observed.last_reason))

    def publish_row(self, row: TargetSnapshot, before: Status | None = None) -> None:
        """Publish an already built row (tests, or a source without runtimes)."""
        self._pending[row.name] = row
        if before is not None and row.state is not before:
            self._record(Change(row.name, before, row.state, row.last_check, row.last_reason))

    def reset(self, reason: str, names: Collection[str] | None = None) -> None:
        """Every open page fetches /api/status afresh (a reload added, changed or removed
        targets). What was pending is dropped: the fresh document holds it. ``names``: the
        targets checked now; the recent changes of any other are forgotten."""
        if names is not None:
            self._recent = {name: kept for name, kept in self._recent.items() if name in names}
        self._pending.clear()
        self._changes.clear()
        self._ring.clear()
        self._sequence += 1  # no id from before the reset resumes
        event = frame("reset", json.dumps({"reason": reason}), f"{self._run}.{self._sequence}")
        for stream in self.streams:
            stream.push(event)

    def _record(self, change: Change) -> None:
        self._changes.append(change)
        recent = self._recent.get(change.target)
        if recent is None:
            recent = self._recent[change.target] = deque(maxlen=CHANGES_KEPT)
        recent.append(change)

    def recent_changes(self, name: str) -> list[Change]:
        """This target's last state changes, oldest first."""
        return list(self._recent.get(name, ()))

    # ------------------------------------------------------------------ streams

    def open(
        self, last_event_id: str | None, on_drop: Callable[[], None] | None = None
    ) -> tuple[Stream, list[bytes]]:
        """A new stream and what it must be sent first: the missed events, or a reset."""
        stream = Stream(on_drop=on_drop)
        self.streams.add(stream)
        self._last_stream_at = self._clock()
        missed = self._missed_since(last_event_id)
        if missed is None:
            reason = "first connection" if not last_event_id else "too far behind to resume"
            current = f"{self._run}.{self._sequence}"
            return stream, [frame("reset", json.dumps({"reason": reason}), current)]
        return stream, missed

    def close(self, stream: Stream) -> None:
        self.streams.discard(stream)
        self._last_stream_at = self._clock()

    def _missed_since(self, last_event_id: str | None) -> list[bytes] | None:
        if not last_event_id:
            return None
        run, _, number = last_event_id.strip().partition(".")
        if run != self._run or not number.isdigit() or len(number) > 18:
            return None
        seen = int(number)
        if seen == self._sequence:
            return []
        if not self._ring or seen > self._sequence or seen < self._ring[0][0] - 1:
            return None
        return [event for n, event in self._ring if n > seen]

    # ------------------------------------------------------------------ flushing

    async def run(self) -> None:
        """Flush every ``flush_interval`` until cancelled."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keepalive-web-events")
        try:
            while True:
                await asyncio.sleep(self._flush_interval)
                try:
                    await self.flush()
                except Exception:  # one bad build must not end the stream for every page
                    log.exception("building a page update failed")
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def flush(self) -> None:
        """Turn what was published since the last flush into one event for every stream."""
        now = self._clock()
        if not self.streams and now - self._last_stream_at > RESUME_GRACE:
            # Nobody is listening or about to resume: build nothing, forget the ring. What is
            # dropped moves the sequence on, so no old id can claim to be up to date.
            if self._pending or self._changes:
                self._sequence += 1
            self._pending.clear()
            self._changes.clear()
            self._ring.clear()
            return
        summary_due = now - self._last_summary >= SUMMARY_INTERVAL and self._source is not None
        if not (self._pending or self._changes or summary_due):
            return
        # Rows are built here, on the loop, from the runtimes (each cached until its next
        # check, and the same object the next snapshot reuses); serialising is in the thread.
        rows = [
            view_of(item) if isinstance(item, TargetRuntime) else item
            for item in self._pending.values()
            if not _retired(item)
        ]
        changes = self._changes
        self._pending, self._changes = {}, []
        snapshot = None
        if summary_due and self._source is not None:
            snapshot = self._source.snapshot()
            self._last_summary = now
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(self._executor, _build_update, rows, changes, snapshot)
        else:
            data = _build_update(rows, changes, snapshot)
        self._sequence += 1
        self.events_built += 1
        event = frame("update", data, f"{self._run}.{self._sequence}")
        self._ring.append((self._sequence, event))
        for stream in self.streams:
            stream.push(event)

    def start(self) -> None:
        """Start flushing on the running loop (the web app's start-up)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="web-events")

    async def stop(self) -> None:
        """Stop flushing and wake every stream so it ends."""
        for stream in self.streams:
            stream.ended = True
            stream.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _retired(item: TargetRuntime | TargetSnapshot) -> bool:
    return isinstance(item, TargetRuntime) and item.retired
