"""What the stress scenario reads back from the monitor: lag samples, events, log timings, alerts."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.loopback import http_json
from bench.percentile import percentile
from bench.stress.load import round_or_none

TIMING_FIELD = re.compile(r"\b(\w+_seconds)=([0-9.]+)")


@dataclass
class LagSamples:
    """The monitor's own figures, read from every /api/status answer during a phase."""

    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    stalled: int = 0
    worst_down: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_body(self, body: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.add(json.loads(body)["monitor"])

    def add(self, monitor: dict[str, Any]) -> None:
        lag = monitor.get("schedule_lag_seconds") or {}
        with self.lock:
            if lag.get("p50") is not None:
                self.p50.append(float(lag["p50"]))
            if lag.get("p99") is not None:
                self.p99.append(float(lag["p99"]))
            self.stalled += monitor.get("status") == "stalled"
            down = int(monitor.get("targets_down") or 0) + int(monitor.get("targets_failing") or 0)
            self.worst_down = max(self.worst_down, down)


def _epoch(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def read_events(path: Path, since: float) -> list[dict[str, Any]]:
    """The events file's records stamped at or after ``since`` (epoch seconds)."""
    out: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if not isinstance(record, dict):
                    continue
                stamp = _epoch(str(record.get("ts")))
                if stamp is not None and stamp >= since:
                    record["_epoch"] = stamp
                    out.append(record)
    return out


def log_timings(path: Path, offset: int) -> dict[str, list[float]]:
    """``*_seconds=N`` fields of the log's ``reload timing`` lines written past ``offset``.

    The monitor logs ``reload timing off_loop_seconds=… on_loop_seconds=…`` per reload (from
    5d64908): the loop's own share of a reload, which nothing outside can see."""
    found: dict[str, list[float]] = {}
    with contextlib.suppress(OSError), path.open("rb") as log:
        log.seek(offset)
        for line in log.read().decode(errors="replace").splitlines():
            if "reload timing" in line:
                for key, value in TIMING_FIELD.findall(line):
                    found.setdefault(key, []).append(float(value))
    return found


def reload_figures(
    sent: list[float], events: list[dict[str, Any]], timings: dict[str, list[float]]
) -> dict[str, Any]:
    """Each SIGHUP matched to the first ``config_reloaded`` after it: the delay seen from outside.

    The delay holds signal delivery, the wait for the loop to be free, reading the settings and
    the reload itself; the events file stamps to the millisecond. What the monitor says of its
    reloads (the log's ``reload timing`` fields, or a field named *ms*, *seconds* or *duration*
    in the event) is reported as it is."""
    reloaded = sorted((e for e in events if e.get("event") == "config_reloaded"), key=lambda e: e["_epoch"])
    failed = sum(1 for e in events if e.get("event") == "config_reload_failed")
    delays: list[float] = []
    reported: dict[str, list[float]] = {key: list(values) for key, values in timings.items()}
    position = 0
    for moment in sent:
        while position < len(reloaded) and reloaded[position]["_epoch"] < moment - 0.002:
            position += 1
        if position == len(reloaded):
            break
        event = reloaded[position]
        delays.append(max(0.0, event["_epoch"] - moment))
        for key, value in event.items():
            words = ("ms", "seconds", "duration")
            if isinstance(value, int | float) and any(word in key for word in words) and key != "_epoch":
                reported.setdefault(key, []).append(float(value))
        position += 1
    delays.sort()
    return {
        "sighups_sent": len(sent),
        "reloads_seen": len(delays),
        "reloads_failed": failed,
        "sighup_to_event_p50": round_or_none(percentile(delays, 50)),
        "sighup_to_event_max": round_or_none(delays[-1] if delays else None),
        "reported_by_monitor": {
            key: {"count": len(values), "p50": percentile(sorted(values), 50), "max": max(values)}
            for key, values in reported.items()
            if values
        },
    }


def alerts_since(ctx: Context, since: float) -> int:
    messages = http_json("GET", f"http://127.0.0.1:{ctx.telegram_port}/_messages") or []
    return sum(1 for message in messages if float(message["t"]) >= since)
