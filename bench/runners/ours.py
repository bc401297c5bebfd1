"""Our monitor: the steady window, its own schedule figures from /api/status, and alert latency."""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from bench.context import Context
from bench.farm_control import Farm
from bench.loopback import http, http_json
from bench.machine import monitor_commit
from bench.measure import common_figures, steady_window, warmup_for
from bench.monitor_process import start_monitor, target_name
from bench.profiling import finish_profiler, start_profiler


def alert_bound(args: argparse.Namespace, interval: float) -> float:
    """threshold × interval + timeout + 0.5 s: the latency the issue allows a DOWN alert."""
    return float(args.threshold * interval + args.timeout + 0.5)


class AlertProbe:
    """Flips one target to 503 at ``flip_at`` and waits for the fake Bot API to get its DOWN."""

    def __init__(self, farm: Farm, telegram_port: int, victim: int, flip_at: float) -> None:
        self.victim = victim
        self.name = target_name(victim)
        self.control = f"http://127.0.0.1:{farm.port_for(victim)}"
        self.messages = f"http://127.0.0.1:{telegram_port}/_messages"
        self.flip_at = flip_at
        self.flipped_at: float | None = None  # the farm's epoch time of the flip
        self.message: dict[str, Any] | None = None

    def tick(self) -> None:
        """Flip the victim once flip_at has come; once its DOWN message arrived, heal it."""
        if self.message is not None:
            return
        if self.flipped_at is None:
            if time.monotonic() >= self.flip_at:
                answer = http_json("POST", f"{self.control}/_fail/{self.victim}?mode=503")
                self.flipped_at = float((answer or {}).get("t", time.time()))
            return
        for message in http_json("GET", self.messages) or []:
            if message["t"] >= self.flipped_at and self.name in message["text"]:
                self.message = message
                self.heal()
                return

    def heal(self) -> None:
        http("POST", f"{self.control}/_ok/{self.victim}")

    def finish(self, bound: float) -> dict[str, Any]:
        """Poll (at least once) until the message arrived or bound + 2 s passed since the flip."""
        self.tick()  # a window shorter than the flip delay still flips
        assert self.flipped_at is not None
        while True:
            self.tick()
            if self.message is not None or time.time() > self.flipped_at + bound + 2.0:
                break
            time.sleep(0.2)
        out: dict[str, Any] = {"target": self.name}
        if self.message is None:
            out["latency_seconds"] = None
            out["note"] = f"no DOWN message within bound + 2 s ({bound + 2:g} s)"
            self.heal()
        else:
            latency = round(float(self.message["t"]) - self.flipped_at, 3)
            out["latency_seconds"] = latency
            out["within_bound"] = latency <= bound
        return out


class OursRunner:
    system = "ours"

    def run(self, ctx: Context, size: int, interval: float) -> dict[str, Any]:
        args = ctx.args
        commit = monitor_commit(args.monitor)
        monitor = start_monitor(ctx, f"ours-{size}-{ctx.repeat}", size, interval)
        try:
            time.sleep(warmup_for(args, size, interval))

            # Alert latency: flip one target at a random moment early in the window.
            bound = alert_bound(args, interval)
            alert: dict[str, Any] = {"bound_seconds": round(bound, 3)}
            probe: AlertProbe | None = None
            if args.alert and bound <= args.alert_max_wait:
                delay = random.uniform(0.5, max(0.5, min(interval, args.duration / 4)))
                probe = AlertProbe(ctx.farm, ctx.telegram_port, size // 2, time.monotonic() + delay)
            elif args.alert:
                alert["skipped"] = f"bound {bound:g} s > --alert-max-wait {args.alert_max_wait:g} s"

            status0 = monitor.status()
            log_bytes0 = monitor.log_path.stat().st_size
            profiler = start_profiler(ctx, monitor.pid, f"ours-{size}-{ctx.repeat}")
            tick = probe.tick if probe is not None else None
            cpu0, cpu1, farm = steady_window(ctx, monitor.pid, size, interval, tick)
            profile = finish_profiler(ctx, profiler)
            status1 = monitor.status()
            log_bytes1 = monitor.log_path.stat().st_size
            if status0 is None or status1 is None:
                raise RuntimeError("the monitor stopped answering /api/status")
            mon0, mon1 = status0["monitor"], status1["monitor"]
            checks = int(mon1["checks_total"]) - int(mon0["checks_total"])
            result = common_figures(size, interval, cpu0, cpu1, farm, monitor.pid, checks)
            if probe is not None:
                alert.update(probe.finish(bound))
            result.update(
                {
                    "system": "ours",
                    "monitor_commit": commit,
                    "startup_seconds": round(monitor.startup_seconds, 3),
                    "schedule_lag_seconds": mon1["schedule_lag_seconds"],
                    "missed_checks": int(mon1["checks_missed_total"]) - int(mon0["checks_missed_total"]),
                    "missed_checks_since_start": int(mon1["checks_missed_total"]),
                    "targets_up": mon1.get("targets_up"),
                    "targets_down": mon1.get("targets_down"),
                    "log_bytes_in_window": log_bytes1 - log_bytes0,
                    "alert": alert,
                }
            )
            if profile is not None:
                result["profile"] = profile
        finally:
            code, stop_seconds = ctx.children.stop(monitor.proc, grace=15)
        result["exit_code"] = code
        result["stop_seconds"] = round(stop_seconds, 3)
        return result
