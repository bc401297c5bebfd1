"""When each target is checked: a heap of due times and ONE timer on a shared TICK grid.

All times here are the loop's monotonic clock, never wall time: setting the system clock back
an hour must not delay a single check (wall time is only for display, in ``Observed``).

The loop is passed in (anything with ``time()`` and ``call_at()``), so a test drives the
schedule with a hand-advanced clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

# Checks start on a shared grid of TICK seconds: those due within one tick start in one pass of
# the event loop, for at most TICK of added lag. Measured in bench/client_cost.py, batching the
# starts halves the CPU of a check, and thousands of idle tasks (each with its coroutine frame
# and timer) are not kept in memory.
TICK = 0.05
# A timer may fire a little before its time (uvloop rounds to milliseconds): what is due this
# close counts as due now, so a wake-up never finds nothing to do and re-arms for the same instant.
EARLY = 0.002
# The first round of checks is spread at this many checks a second (and over at most one
# interval), so thousands of targets do not all fire in the same millisecond forever after.
STARTUP_RAMP_RATE = 200.0


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class TimerLoop(Protocol):
    """The part of an asyncio loop the scheduler uses."""

    def time(self) -> float: ...
    def call_at(self, when: float, callback: Callable[[], object]) -> Cancellable: ...


class Schedulable(Protocol):
    next_due: float  # loop time of the next planned check
    retired: bool  # no further checks: skipped when it comes due

    @property
    def interval(self) -> float: ...


T = TypeVar("T", bound=Schedulable)


class AsyncioTimers:
    """``TimerLoop`` over a real asyncio loop."""

    # The loop's own bound methods, not wrappers: the engine reads the time three times per
    # check, and a Python-level call each time showed in the per-check instruction count.
    time: Callable[[], float]
    call_at: Callable[[float, Callable[[], object]], Cancellable]

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.time = loop.time
        self.call_at = loop.call_at


class Scheduler(Generic[T]):
    """Calls ``start(item)`` for every item when its ``next_due`` comes (on the TICK grid)."""

    def __init__(self, loop: TimerLoop, start: Callable[[T], None], tick: float = TICK) -> None:
        self._loop = loop
        self._start = start
        self._tick = tick
        # (due loop time, tie-breaker, item) for every item not being checked.
        self._due: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._timer: Cancellable | None = None
        # Kept beside the timer: uvloop's TimerHandle.when() is rounded to milliseconds.
        self._timer_when = math.inf
        self.missed = 0  # whole intervals skipped because a check fell that far behind

    def __len__(self) -> int:
        return len(self._due)

    @property
    def wakes_at(self) -> float:
        """Loop time of the next wake-up (inf when none is set)."""
        return self._timer_when

    def spread(self, items: Sequence[T]) -> None:
        """Plan the first check of each item, spread over the start-up ramp from now."""
        if not items:
            return
        now = self._loop.time()
        count = len(items)
        span = count / STARTUP_RAMP_RATE
        order = self._order
        entries: list[tuple[float, int, T]] = []
        append = entries.append  # a tight loop: 50,000 items after a reload that changed all
        for index, item in enumerate(items):
            interval = item.interval
            due = now + (span if span < interval else interval) * index / count
            item.next_due = due
            append((due, next(order), item))
        if count * 8 < len(self._due):
            for entry in entries:
                heapq.heappush(self._due, entry)
        else:
            # Many at once (start-up, a reload that changed most targets): one O(n) heapify,
            # dropping the retired entries on the way, instead of a push (and a timer check)
            # each; at 50,000 targets the pushes held the loop ~50 ms.
            self._due = [entry for entry in self._due if not entry[2].retired]
            self._due.extend(entries)
            heapq.heapify(self._due)
        self._arm(now)  # the first item is due now

    def plan(self, item: T) -> None:
        """Start ``item`` at its ``next_due``."""
        heapq.heappush(self._due, (item.next_due, next(self._order), item))
        self._arm(item.next_due)

    def advance(self, item: T) -> int:
        """After a check of ``item``: move it to its next slot and plan it; return the slots
        skipped because it fell more than a whole interval behind (counted in ``missed``)."""
        interval = item.interval
        item.next_due += interval
        behind = self._loop.time() - item.next_due
        missed = 0
        if behind >= interval:
            # Skip the slots that are gone instead of firing them back to back.
            missed = int(behind // interval)
            self.missed += missed
            item.next_due += missed * interval
        self.plan(item)
        return missed

    def clear(self) -> None:
        """Forget every planned item and cancel the timer (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_when = None, math.inf
        self._due.clear()

    def _arm(self, due: float) -> None:
        when = max(due, math.ceil(due / self._tick) * self._tick)
        if when >= self._timer_when:
            return  # an earlier wake-up is already set; it re-arms for the rest
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_tick)
        self._timer_when = when

    def _on_tick(self) -> None:
        self._timer, self._timer_when = None, math.inf
        due = self._due
        try:
            now = self._loop.time() + EARLY
            while due and due[0][0] <= now:
                item = heapq.heappop(due)[2]
                if not item.retired:
                    self._start(item)
        finally:
            # Even after an unexpected error the schedule goes on (and a stuck one would show
            # as "stalled" on /health, since every check would be overdue).
            if due:
                self._arm(due[0][0])
