"""Instructions per check of the whole monitor, counted by valgrind's callgrind: a CPU figure
that does not move with the machine's load (the bench's CPU ms per check moves by ±30 %).

    python -m bench.instructions                           # 40 targets @ 1 s, runs of 45 and 90 s
    python -m bench.instructions --monitor /tmp/wt/monitor_server.py   # another commit

It runs ``monitor_server.py`` under ``valgrind --tool=callgrind`` twice against the loopback
farm, once for ``--short`` and once for ``--long`` seconds, each stopped with SIGTERM, and
divides the difference in instructions by the difference in checks the farm answered. Start-up,
shutdown and the once-a-second work cancel out; what remains is the cost of a check (the
probe, the state machine, the engine's hooks and, at ``--interval`` 1, a share of the
per-second work) in user space. The kernel's share (connect, read, close) is not counted.

Deterministic within a run (PYTHONHASHSEED=0, the same targets), so two commits compare to
within about 1 %. Needs valgrind (``apt-get install valgrind``); callgrind slows the monitor
about 50×, hence the small default farm. Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time

from bench.context import bench_context
from bench.farm_control import farm_start_window, farm_stats
from bench.machine import monitor_commit
from bench.monitor_process import monitor_env, targets_toml
from bench.options import add_monitor_options

# MONITOR_HTTP_PORT=0 turns the monitor's own endpoint off: nothing scrapes it here.
NO_ENDPOINT = 0
TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    summary = __doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=summary)
    parser.add_argument("--targets", type=int, default=40, help="targets (default 40)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks (default 1)")
    parser.add_argument("--short", type=float, default=45.0, help="the shorter run, seconds (default 45)")
    parser.add_argument("--long", type=float, default=90.0, help="the longer run, seconds (default 90)")
    add_monitor_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.targets <= 10_000:
        parser.error("--targets must be 1 to 10000")
    if args.interval <= 0:
        parser.error("--interval must be above 0")
    if not 0 < args.short < args.long:
        parser.error("--short must be above 0 and below --long")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    with bench_context(args, args.targets) as ctx:
        runs: list[dict[str, float]] = []
        for seconds in (args.short, args.long):
            work = ctx.tmp / f"run-{seconds:g}"
            work.mkdir()
            targets_file = work / "targets.toml"
            targets_file.write_text(
                targets_toml(ctx.farm, range(args.targets), args.interval, args.timeout, args.threshold)
            )
            env = monitor_env(ctx, work, targets_file, NO_ENDPOINT)
            env["PYTHONHASHSEED"] = "0"
            out = work / "callgrind.out"
            farm_start_window(ctx.farm, args.interval)
            callgrind = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
            proc = ctx.children.start(
                [*callgrind, sys.executable, str(args.monitor)],
                env=env,
                cwd=args.monitor.resolve().parent,
            )
            time.sleep(seconds)
            code, _ = ctx.children.stop(proc, grace=120)
            checks = farm_stats(ctx.farm)["requests"]
            found = TOTALS.search(out.read_bytes()) if out.exists() else None
            if found is None:
                print(f"callgrind wrote no totals (exit code {code}); see {work}", file=sys.stderr)
                return 1
            runs.append({"seconds": seconds, "checks": checks, "instructions": int(found.group(1))})
            print(json.dumps(runs[-1]), flush=True)
    short, long = runs
    if long["checks"] <= short["checks"]:
        print("the longer run answered no more checks than the shorter one", file=sys.stderr)
        return 1
    per_check = (long["instructions"] - short["instructions"]) / (long["checks"] - short["checks"])
    print(
        json.dumps(
            {
                "monitor_commit": monitor_commit(args.monitor),
                "targets": args.targets,
                "interval": args.interval,
                "instructions_per_check": round(per_check),
                "runs": runs,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
