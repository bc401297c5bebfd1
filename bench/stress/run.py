"""The stress scenario's entry point: start the monitor once, measure each phase, report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.children import ROOT
from bench.context import bench_context
from bench.machine import machine_info, tool_versions
from bench.measure import warmup_for
from bench.monitor_process import start_monitor
from bench.stress.options import parse_args
from bench.stress.phase import measure_phase
from bench.stress.report import report

RESULTS = ROOT / "bench" / "results"
SETTINGS_SHOWN = (
    "targets", "interval", "duration", "scrape_every", "status_path", "sighup_every", "reload",
    "gzip", "load", "timeout", "threshold", "max_concurrency",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = parse_args(argv)
    results: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "command": " ".join([".venv/bin/python -m bench.stress", *argv]),
        "machine": machine_info(tool_versions(), args.monitor),
        "settings": {key: getattr(args, key) for key in SETTINGS_SHOWN},
        "results": results,
    }
    failed = False
    with bench_context(args, args.targets + 1) as ctx:
        print(f"starting the monitor on {args.targets:,} targets every {args.interval:g} s ...", flush=True)
        monitor = start_monitor(ctx, f"stress-{args.targets}", args.targets, args.interval)
        try:
            document["startup_seconds"] = round(monitor.startup_seconds, 3)
            time.sleep(warmup_for(args, args.targets, args.interval))
            for phase in args.phase_list:
                print(f"phase {phase}: {args.duration:g} s ...", flush=True)
                try:
                    result = measure_phase(ctx, monitor, phase)
                except Exception as exc:
                    result = {"phase": phase, "error": f"{type(exc).__name__}: {exc}"}
                    failed = True
                results.append(result)
                brief = {k: v for k, v in result.items() if k not in ("farm_observed", "profile")}
                print(f"  {json.dumps(brief)}", flush=True)
        finally:
            code, stop_seconds = ctx.children.stop(monitor.proc, grace=15)
        document["exit_code"], document["stop_seconds"] = code, round(stop_seconds, 3)
    text = report(document)
    print("\n" + text, flush=True)
    if args.json:
        path = (
            RESULTS / f"stress-{time.strftime('%Y%m%d-%H%M%S')}.json"
            if args.json == "auto"
            else Path(args.json)
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")
        path.with_suffix(".md").write_text(text + "\n")
        print(f"results written to {path}", flush=True)
    return 1 if failed else 0
