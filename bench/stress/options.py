"""``python -m bench.stress``'s options, checked once: a bad value is one line and exit code 2."""

from __future__ import annotations

import argparse

from bench.options import add_monitor_options, add_profile_options, check_duration

LOADS = ("metrics", "status", "sighup")
DESCRIPTION = "Stress scenario: many targets while scrapers and SIGHUPs hit the monitor (issue 9)."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stress",
        description=DESCRIPTION,
        epilog="See bench/README.md for what each figure means.",
    )
    parser.add_argument("--targets", type=int, default=10_000, help="target count")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between checks of a target")
    parser.add_argument("--duration", type=float, default=60.0, help="steady window per phase, seconds")
    parser.add_argument("--warmup", type=float, help="seconds before the first phase (default: interval + 2)")
    parser.add_argument("--phases", default="quiet,loaded", help="quiet,loaded (in that order), or one")
    parser.add_argument(
        "--scrape-every", type=float, default=1.0, help="seconds between fetches of each endpoint"
    )
    parser.add_argument(
        "--status-path", default="/api/status?history=1", help="the status fetch (default: with history)"
    )
    parser.add_argument(
        "--load", default=",".join(LOADS), help="the loaded phase's load: any of metrics,status,sighup"
    )
    parser.add_argument("--sighup-every", type=float, default=10.0, help="seconds between SIGHUPs")
    parser.add_argument(
        "--reload", choices=("same", "toggle"), default="same", help="what each SIGHUP reloads"
    )
    parser.add_argument(
        "--sample-every", type=float, default=5.0, help="quiet phase: /api/status sample period"
    )
    parser.add_argument(
        "--identity",
        dest="gzip",
        action="store_false",
        help="fetch without Accept-Encoding: gzip (default: ask for gzip, as Prometheus and browsers do)",
    )
    parser.add_argument(
        "--json", nargs="?", const="auto", metavar="PATH", help="also write the results as JSON"
    )
    add_profile_options(parser)
    add_monitor_options(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.targets <= 99_999:
        parser.error("--targets: from 1 to 99999")
    if args.interval < 0.1:
        parser.error("--interval: at least 0.1 seconds")
    check_duration(parser, args)
    for name in ("scrape_every", "sighup_every", "sample_every"):
        if getattr(args, name) < 0.1:
            parser.error(f"--{name.replace('_', '-')}: at least 0.1 seconds")
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phase_list or any(p not in ("quiet", "loaded") for p in args.phase_list):
        parser.error("--phases: quiet, loaded or quiet,loaded")
    args.load_list = [word.strip() for word in args.load.split(",") if word.strip()]
    if not args.load_list or any(word not in LOADS for word in args.load_list):
        parser.error("--load: one or more of metrics,status,sighup")
    if not args.status_path.startswith("/"):
        parser.error("--status-path: a path starting with /")
    # What the shared set-up reads and the stress scenario does not vary.
    args.alert = False
    return args
