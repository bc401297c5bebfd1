"""The bench's command-line options, checked once: a bad value is one line and exit code 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.children import ROOT
from bench.runners.base import PEERS

# Default interval per size: the plan (one idle target, then 200 and 1,000 checks/s).
DEFAULT_INTERVALS = {1: 600.0, 100: 5.0, 1000: 5.0, 10000: 10.0}
MAX_TARGETS = 99_999


def add_monitor_options(parser: argparse.ArgumentParser) -> None:
    """Options every scenario shares: how our monitor and the farm are set up."""
    parser.add_argument("--timeout", type=float, default=5.0, help="check timeout, seconds")
    parser.add_argument("--threshold", type=int, default=2, help="failure_threshold")
    parser.add_argument("--max-concurrency", type=int, default=1000, help="MONITOR_MAX_CONCURRENCY")
    parser.add_argument("--farm-procs", type=int, default=1, help="farm processes")
    parser.add_argument("--farm-ports", type=int, default=4, help="listening ports per farm process")
    parser.add_argument("--monitor", type=Path, default=ROOT / "monitor_server.py")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the working directory (configs, logs)")


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record our monitor over each window into DIR (CPU figures of such runs are inflated)",
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--profile-native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="py-spy --gil --threads: only samples holding the GIL, by thread (who keeps the loop waiting)",
    )


def check_duration(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0.5 <= args.duration <= 3600:
        parser.error("--duration: from 0.5 to 3600 seconds")


def parse_args(argv: list[str] | None, description: str | None = None) -> argparse.Namespace:
    """``python -m bench.run``'s options (sizes, intervals, peers, repeats, JSON, profiling)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=description,
        epilog="See bench/README.md for what each figure means.",
    )
    parser.add_argument("--sizes", default="1,100,1000,10000", help="comma-separated target counts")
    parser.add_argument(
        "--interval",
        help="seconds between checks: one value for every size, or one per size "
        "(default: 1→600, 100→5, 1000→5, 10000→10, others 10)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="steady window per run, seconds")
    parser.add_argument("--warmup", type=float, help="seconds before the window (default: one interval + 2)")
    parser.add_argument(
        "--peers", default="blackbox,monit", help="peers to run when installed: blackbox,monit or none"
    )
    parser.add_argument("--no-alert", dest="alert", action="store_false", help="skip the alert latency test")
    parser.add_argument(
        "--alert-max-wait",
        type=float,
        default=120.0,
        help="measure alert latency only where threshold × interval + timeout + 0.5 is at most this",
    )
    parser.add_argument(
        "--ceiling-seconds", type=float, default=5.0, help="farm ceiling measurement, seconds (0: skip)"
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="auto",
        metavar="PATH",
        help="also write the results as JSON (default path: bench/results/bench-<time>.json)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every size and system N times, interleaved; report medians"
    )
    add_profile_options(parser)
    add_monitor_options(parser)
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(size) for size in str(args.sizes).split(",") if size.strip()]
    except ValueError:
        parser.error("--sizes: comma-separated whole numbers, e.g. 100,1000")
    if not args.sizes or min(args.sizes) < 1 or max(args.sizes) > MAX_TARGETS:
        parser.error(f"--sizes: target counts from 1 to {MAX_TARGETS}")
    if args.interval:
        try:
            values = [float(v) for v in str(args.interval).split(",") if v.strip()]
        except ValueError:
            parser.error("--interval: comma-separated numbers of seconds, e.g. 5 or 5,10")
        if len(values) == 1:
            values *= len(args.sizes)
        if len(values) != len(args.sizes) or min(values) < 0.1:
            parser.error("--interval: one value, or one per size; each >= 0.1")
        args.intervals = values
    else:
        args.intervals = [DEFAULT_INTERVALS.get(size, 10.0) for size in args.sizes]
    check_duration(parser, args)
    peers = [p.strip() for p in str(args.peers).split(",") if p.strip() and p.strip() != "none"]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"--peers: unknown peer {unknown[0]!r} (known: {', '.join(PEERS)}, none)")
    args.peer_list = peers
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat: from 1 to 20")
    return args
