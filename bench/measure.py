"""The steady window: CPU, memory and the farm's view of punctuality, the same for every system."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from bench.context import Context
from bench.farm_control import farm_start_window, farm_stats
from bench.percentile import percentile
from bench.procfs import CpuSample, cpu_between, machine_busy_seconds, peak_rss_mib, sample_cpu


def gap_figures(
    gaps: list[float], interval: float, window: float, size: int, seen: int, requests: int
) -> dict[str, Any]:
    """How punctual the poller looked from the targets' side.

    ``late`` is a gap between two checks of one target minus the interval (0 = punctual).
    ``missed`` counts the slots a gap skipped (a gap of 2 intervals = 1 missed) plus, when the
    window spans two intervals or more, targets the poller never reached."""
    late = sorted(gap - interval for gap in gaps)
    skipped = sum(max(0, round(gap / interval) - 1) for gap in gaps)
    if window >= 2 * interval:
        skipped += max(0, size - seen) * max(1, int(window // interval))
    # A poller whose cycle stretches (Monit's sequential checks) skips no slot outright but
    # falls behind the schedule: count the checks it owes over the window as well.
    # (Under 1 % is the window's edges, not a poller falling behind.)
    expected = size * window / interval
    short = round(expected - requests) if window >= interval and requests < 0.99 * expected else 0
    return {
        "late_p50": percentile(late, 50),
        "late_p99": percentile(late, 99),
        "late_max": late[-1] if late else None,
        "missed": max(skipped, short),
        "skipped_slots": skipped,
        "short_of_schedule": short,
        "gaps": len(gaps),
    }


def warmup_for(args: argparse.Namespace, size: int, interval: float) -> float:
    if args.warmup is not None:
        return float(args.warmup)
    if interval > 60:
        return 3.0  # an idle configuration: the first checks run at once, then nothing until I
    # One whole interval (the monitor ramps its first round up over at most one interval).
    return interval + 2.0


def steady_window(
    ctx: Context, pid: int, size: int, interval: float, tick: Callable[[], None] | None = None
) -> tuple[CpuSample, CpuSample, dict[str, Any]]:
    """Sample CPU of ``pid`` at the window's start and end, with the farm's window around it."""
    farm_start_window(ctx.farm, interval)
    farm_cpu0 = [sample_cpu(p, tree=False) for p in ctx.farm.pids()]
    busy0 = machine_busy_seconds()
    cpu0 = sample_cpu(pid)
    end = time.monotonic() + ctx.args.duration
    while time.monotonic() < end:
        if tick is not None:
            tick()
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))
    cpu1 = sample_cpu(pid)
    busy1 = machine_busy_seconds()
    farm_cpu1 = [sample_cpu(p, tree=False) for p in ctx.farm.pids()]
    stats = farm_stats(ctx.farm)
    farm_cpu = sum(b.cpu - a.cpu for a, b in zip(farm_cpu0, farm_cpu1, strict=True))
    farm_wall = max((b.wall - a.wall for a, b in zip(farm_cpu0, farm_cpu1, strict=True)), default=1.0)
    stats["cpu_percent"] = round(100 * farm_cpu / farm_wall, 2)
    # Everything busy on the machine (all cores, 200 % = both cores of a 2-core box): shows
    # whether something besides the bench competed for the CPU during the window.
    stats["machine_busy_percent"] = round(100 * (busy1 - busy0) / (cpu1.wall - cpu0.wall), 1)
    stats["cpu_ms_per_request"] = round(1000 * farm_cpu / stats["requests"], 4) if stats["requests"] else None
    return cpu0, cpu1, stats


def common_figures(
    size: int, interval: float, cpu0: CpuSample, cpu1: CpuSample, farm: dict[str, Any], pid: int, checks: int
) -> dict[str, Any]:
    cpu, wall = cpu_between(cpu0, cpu1)
    gaps = gap_figures(farm["gaps"], interval, farm["seconds"], size, farm["targets_seen"], farm["requests"])
    return {
        "size": size,
        "interval": interval,
        "window_seconds": round(wall, 3),
        "checks_per_second_required": round(size / interval, 3),
        "checks_in_window": checks,
        "checks_per_second_achieved": round(checks / wall, 3) if wall else None,
        "farm_requests_per_second": round(farm["requests"] / farm["seconds"], 3) if farm["seconds"] else None,
        "cpu_seconds": round(cpu, 3),
        "cpu_system_share": round((cpu1.system - cpu0.system) / cpu, 3) if cpu else None,
        "cpu_percent": round(100 * cpu / wall, 3) if wall else None,
        "cpu_ms_per_check": round(1000 * cpu / checks, 4) if checks else None,
        "peak_rss_mib": round(peak_rss_mib(pid), 2),
        "farm_observed": gaps,
        "farm_cpu_percent": farm["cpu_percent"],
        "farm_cpu_ms_per_request": farm["cpu_ms_per_request"],
        "machine_busy_percent": farm["machine_busy_percent"],
        "load_average": os.getloadavg()[0],
    }
