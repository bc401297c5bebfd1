"""Scale benchmark: the Keep-Alive Monitor beside Prometheus blackbox_exporter and Monit.

One command (from the repository root):

    .venv/bin/python -m bench.run                      # 1, 100, 1,000, 10,000 targets, 60 s each
    .venv/bin/python -m bench.run --sizes 1000 --interval 5 --duration 30 --peers none

For each size it starts, in turn, our monitor and each installed peer against the same
loopback target farm (bench/farm.py), lets it warm up, then measures a steady window of
--duration seconds: checks/s required and achieved, schedule lag and missed checks, CPU %
and CPU ms per check (utime+stime from /proc over the window only), peak RSS (VmHWM), and for
our monitor the alert latency (one target flipped to failing at a known time until the loopback
fake Bot API, bench/fake_telegram.py, receives the DOWN message naming it).

Peers are used when installed and never installed by the bench:
    apt-get install prometheus-blackbox-exporter monit

Figures are printed (a markdown table at the end) and, with --json, written to
bench/results/. Nothing is asserted: the bench reports, readers judge. Every process the bench
starts is stopped when it ends, on Ctrl-C, on SIGTERM, and (through PR_SET_PDEATHSIG) even when
the bench itself is killed. The stress scenario (metrics scrapes and SIGHUPs under load) is
``python -m bench.stress``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.children import ROOT
from bench.context import Context, bench_context
from bench.farm_control import farm_ceiling
from bench.machine import APT_HINT, machine_info, tool_versions
from bench.options import parse_args
from bench.report import report
from bench.runners import RUNNERS

RESULTS = ROOT / "bench" / "results"
USAGE_REPORT = "usage: python -m bench.run --report RESULTS.json  (print the report of an earlier run)"


def run_plan(ctx: Context, results: list[dict[str, Any]]) -> bool:
    """Every size × system × repeat, interleaved; returns whether a run of ours failed."""
    args = ctx.args
    failed = False
    plan = [
        (repeat, size, interval, system)
        for repeat in range(args.repeat)
        for size, interval in zip(args.sizes, args.intervals, strict=True)
        for system in ["ours", *args.peer_list]
    ]
    for repeat, size, interval, system in plan:
        ctx.repeat = repeat
        round_text = f" (round {repeat + 1} of {args.repeat})" if args.repeat > 1 else ""
        print(f"running {system}: {size:,} targets every {interval:g} s{round_text} ...", flush=True)
        try:
            result = RUNNERS[system].run(ctx, size, interval)
        except Exception as exc:
            result = {"system": system, "error": f"{type(exc).__name__}: {exc}"}
            failed = failed or system == "ours"
        result.setdefault("size", size)
        result.setdefault("interval", interval)
        result["repeat"] = repeat
        results.append(result)
        brief = {k: v for k, v in result.items() if k not in ("farm_observed", "driver", "profile")}
        print(f"  {json.dumps(brief)}", flush=True)
        time.sleep(1.0)  # let the last system's sockets drain before the next one starts
    return failed


def write_results(target: str, document: dict[str, Any], text: str) -> Path:
    """The JSON document and its markdown twin (the printed report)."""
    path = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json" if target == "auto" else Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.with_suffix(".md").write_text(text + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--report"]:
        if len(argv) != 2:
            print(USAGE_REPORT, file=sys.stderr)
            return 2
        try:
            earlier = json.loads(Path(argv[1]).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {argv[1]}: {exc}", file=sys.stderr)
            return 2
        print(report(earlier))
        return 0
    args = parse_args(argv, __doc__.split("\n\n")[0] if __doc__ else None)
    command = " ".join([".venv/bin/python -m bench.run", *argv])
    results: list[dict[str, Any]] = []
    tools = tool_versions()
    for peer in args.peer_list:
        if not tools.get(peer):
            print(f"peer {peer} is not installed; to include it: {APT_HINT}", flush=True)
    with bench_context(args, max(10_000, *args.sizes)) as ctx:
        ctx.tools = tools
        document: dict[str, Any] = {
            "command": command,
            "machine": machine_info(tools, args.monitor),
            "settings": {
                "duration": args.duration,
                "timeout": args.timeout,
                "threshold": args.threshold,
                "farm_processes": args.farm_procs,
                "farm_ports": len(ctx.farm.ports),
            },
            "results": results,
        }
        if args.ceiling_seconds > 0:
            document["farm_ceiling"] = farm_ceiling(ctx.children, ctx.farm, args.ceiling_seconds)
            print(f"farm ceiling: {json.dumps(document['farm_ceiling'])}", flush=True)
        failed = run_plan(ctx, results)
        text = report(document)
        print("\n" + text, flush=True)
        if args.json:
            print(f"results written to {write_results(args.json, document, text)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
