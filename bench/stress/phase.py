"""One steady window of the stress scenario (quiet or loaded) on a running monitor."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.context import Context
from bench.measure import common_figures, steady_window
from bench.monitor_process import MonitorProcess, targets_toml
from bench.procfs import cpu_between, sample_cpu
from bench.profiling import finish_profiler, start_profiler
from bench.stress.load import PROMETHEUS_ACCEPT, Fetcher, Reloader, run_threads
from bench.stress.readings import LagSamples, alerts_since, log_timings, read_events, reload_figures


@dataclass
class Load:
    """What runs beside the monitor during one phase; every item has ``run(stop)``."""

    fetchers: dict[str, Fetcher] = field(default_factory=dict)  # the reported endpoints
    reloader: Reloader | None = None
    others: list[Fetcher] = field(default_factory=list)  # the quiet lag sampler

    def runners(self) -> list[Fetcher | Reloader]:
        return [*self.others, *self.fetchers.values(), *([self.reloader] if self.reloader else [])]


def build_load(ctx: Context, monitor: MonitorProcess, phase: str, samples: LagSamples) -> Load:
    args = ctx.args
    size, interval = args.targets, args.interval
    out = Load()
    load = args.load_list if phase == "loaded" else []
    encoding = {"Accept-Encoding": "gzip"} if args.gzip else {}
    if "metrics" in load:
        scrape = {"Accept": PROMETHEUS_ACCEPT, **encoding}
        out.fetchers["metrics"] = Fetcher(monitor.url("/metrics"), args.scrape_every, scrape)
    if "status" in load:
        status_url = monitor.url(args.status_path)
        out.fetchers["status"] = Fetcher(status_url, args.scrape_every, encoding, samples.add_body)
    else:  # the lag is still read, lightly
        url = monitor.url("/api/status?history=0")
        out.others.append(Fetcher(url, args.sample_every, on_body=samples.add_body))
    if "sighup" in load:
        toggle = None
        if args.reload == "toggle":
            grown = targets_toml(ctx.farm, range(size + 1), interval, args.timeout, args.threshold)
            toggle = (grown, monitor.targets_file.read_text())
        out.reloader = Reloader(monitor, args.sighup_every, toggle)
    return out


def measure_phase(ctx: Context, monitor: MonitorProcess, phase: str) -> dict[str, Any]:
    """One steady window with this phase's load; its figures (bench/README.md)."""
    size, interval = ctx.args.targets, ctx.args.interval
    samples = LagSamples()
    load = build_load(ctx, monitor, phase, samples)
    stop = threading.Event()
    status0 = monitor.status()
    began_wall = time.time()
    log_offset = monitor.log_path.stat().st_size
    # The load comes from this process (its fetches, parsing 5 MB status documents): its CPU
    # shares the machine with the monitor's, so it is reported beside it.
    # py-spy is forked before the load threads start (children.py: preexec_fn and threads).
    profiler = start_profiler(ctx, monitor.pid, f"stress-{size}-{phase}")
    own0 = sample_cpu(os.getpid(), tree=False)
    threads = run_threads(load.runners(), stop)
    try:
        cpu0, cpu1, farm = steady_window(ctx, monitor.pid, size, interval)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    profile = finish_profiler(ctx, profiler)
    own_cpu, own_wall = cpu_between(own0, sample_cpu(os.getpid(), tree=False))
    status1 = monitor.status()
    if status0 is None or status1 is None:
        raise RuntimeError(f"the monitor stopped answering /api/status in the {phase} phase")
    mon0, mon1 = status0["monitor"], status1["monitor"]
    samples.add(mon1)
    checks = int(mon1["checks_total"]) - int(mon0["checks_total"])
    result = common_figures(size, interval, cpu0, cpu1, farm, monitor.pid, checks)
    lag_max0 = (mon0.get("schedule_lag_seconds") or {}).get("max")
    lag1 = mon1.get("schedule_lag_seconds") or {}
    result.update(
        {
            "phase": phase,
            "schedule_lag_seconds": lag1,
            "schedule_lag_p99_worst_sample": max(samples.p99, default=None),
            "schedule_lag_samples": len(samples.p99),
            # The monitor's max is since it started: it grew in this phase only if it moved.
            "schedule_lag_max_grew_in_phase": lag1.get("max") != lag_max0,
            "missed_checks": int(mon1["checks_missed_total"]) - int(mon0["checks_missed_total"]),
            "stalled_samples": samples.stalled,
            "worst_targets_failing_or_down": samples.worst_down,
            "alerts_received": alerts_since(ctx, began_wall),
            "endpoints": {name: fetcher.figures() for name, fetcher in load.fetchers.items()},
            "load_client_cpu_percent": round(100 * own_cpu / own_wall, 2) if own_wall else None,
        }
    )
    if profile is not None:
        result["profile"] = profile
    if load.reloader is not None:
        events = read_events(monitor.events_path, began_wall)
        timings = log_timings(monitor.log_path, log_offset)
        result["reload"] = reload_figures(load.reloader.sent, events, timings)
    return result
