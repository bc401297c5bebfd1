"""The loaded phase's load: fetchers on a fixed schedule, and SIGHUPs (optionally with a changed file)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.loopback import get_as_sent
from bench.monitor_process import MonitorProcess
from bench.percentile import percentile

# What Prometheus 2.x sends when it scrapes (and a browser sends Accept-Encoding too).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@dataclass
class Fetch:
    started: float  # monotonic
    seconds: float
    status: int
    size: int


@dataclass
class Fetcher:
    """GETs one path every ``period`` s on a fixed schedule until stopped; records each answer."""

    url: str
    period: float
    headers: dict[str, str] = field(default_factory=dict)
    # Called with each 200 body, decoded (the status fetcher reads the lag from it).
    on_body: Callable[[bytes], None] | None = None
    fetches: list[Fetch] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        due = time.monotonic()
        while not stop.is_set():
            began = time.monotonic()
            status, wire, body = get_as_sent(self.url, self.headers, timeout=30)
            self.fetches.append(Fetch(began, time.monotonic() - began, status, len(wire)))
            if status == 200 and self.on_body is not None:
                self.on_body(body)
            due += self.period
            # Behind schedule (a slow answer): start the next one at once, never a burst.
            due = max(due, time.monotonic())
            stop.wait(due - time.monotonic())

    def figures(self) -> dict[str, Any]:
        times = sorted(f.seconds for f in self.fetches)
        return {
            "fetches": len(self.fetches),
            "not_200": sum(1 for f in self.fetches if f.status != 200),
            "seconds_p50": round_or_none(percentile(times, 50)),
            "seconds_p99": round_or_none(percentile(times, 99)),
            "seconds_max": round_or_none(times[-1] if times else None),
            "bytes_last": self.fetches[-1].size if self.fetches else None,
        }


@dataclass
class Reloader:
    """Sends SIGHUP every ``period`` s; with ``toggle``, first adds (then removes) one target."""

    monitor: MonitorProcess
    period: float
    toggle_text: tuple[str, str] | None  # (N + 1 targets, N targets) file texts
    sent: list[float] = field(default_factory=list)  # wall-clock times, to match the events

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.period):
            if self.toggle_text is not None:
                text = self.toggle_text[len(self.sent) % 2]
                # Atomic: the monitor must never read half a file.
                spare = self.monitor.targets_file.with_suffix(".next")
                spare.write_text(text)
                os.replace(spare, self.monitor.targets_file)
            self.sent.append(time.time())
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.monitor.pid, signal.SIGHUP)


def run_threads(targets: Sequence[Fetcher | Reloader], stop: threading.Event) -> list[threading.Thread]:
    """One daemon thread per load item, each running until ``stop`` is set."""
    threads = [threading.Thread(target=t.run, args=(stop,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    return threads


def round_or_none(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
