"""Do push and log targets cost the HTTP targets anything? (issue 11, SPEC 14)

    python -m bench.kinds --http 300 --push 1000 --logs 100 --seconds 30

Runs the real monitor in this process (keepalive.engine.app.MonitorApp: scheduler, checker,
web endpoint, state and outbox, all real) twice, each phase with a fresh state directory:

  http   HTTP targets only, at 1 s, against the loopback farm (bench.farm, a child process)
  mixed  the same HTTP targets, plus --push push targets (interval 1 s, each pinged every
         second over HTTP by a child process: ~1,000 pings/s into the monitor's endpoint) and
         --logs log targets (interval 1 s, each file appended 20 lines/s by a child process,
         one line in 20 matching)

and reports, for the HTTP targets alone, the schedule lag (how late each check started
against its due time, read from the runtime as the check starts) and this process's CPU per
HTTP check (process CPU over the phase, divided by HTTP checks, in the http phase; in the
mixed phase the CPU covers pings and log reads too, and is reported per check of any kind).

Child roles (internal): ``--role pinger --port P --tokens-file F`` and ``--role writer
--dir D --files N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.aio import install_fast_loop
from bench.children import Children, read_ready_line
from bench.percentile import percentile
from keepalive.config import load_settings
from keepalive.engine.app import MonitorApp
from keepalive.notifiers.log import LogNotifier
from keepalive.probe.checker import Checker, CheckResult
from keepalive.targets import Target

ROOT = Path(__file__).resolve().parent.parent


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LagChecker:
    """The real checker, noting for each HTTP check how late it started against its due time."""

    def __init__(self, inner: Checker) -> None:
        self.inner = inner
        self.app: MonitorApp | None = None
        self.http_lags: list[float] = []
        self.counts = {"http": 0, "push": 0, "log": 0}
        self.failures: dict[str, int] = {}
        self.recording = False

    async def check(self, target: Target) -> CheckResult:
        kind = target.kind
        if self.recording and kind == "http" and self.app is not None:
            runtime = self.app.monitor.runtimes.get(target.name)
            if runtime is not None:
                self.http_lags.append(asyncio.get_running_loop().time() - runtime.next_due)
        result = await self.inner.check(target)
        if self.recording:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if not result.ok:
                key = f"{kind}: {result.reason}"
                self.failures[key] = self.failures.get(key, 0) + 1
        return result

    async def close(self) -> None:
        await self.inner.close()


def targets_toml(
    ports: list[int], args: argparse.Namespace, push: int, logs: int, log_dir: Path
) -> tuple[str, list[str]]:
    http = args.http
    lines: list[str] = ["[defaults]\ninterval = 1\ntimeout = 5\nfailure_threshold = 3\n"]
    for i in range(http):
        lines.append(f'[[targets]]\nname = "h{i}"\nurl = "http://127.0.0.1:{ports[i % len(ports)]}/t/{i}"\n')
    tokens = [f"bench-push-token-{i:06d}-abcdef" for i in range(push)]
    for i, token in enumerate(tokens):
        lines.append(
            f'[[targets]]\nname = "p{i}"\npush_token = "{token}"\n'
            f"interval = {args.push_interval}\ngrace = 5\n"
        )
    for i in range(logs):
        path = log_dir / f"app{i}.log"
        path.touch()
        lines.append(
            f'[[targets]]\nname = "l{i}"\nlog = "{path}"\npatterns = ["Traceback"]\nmax_matches = 1000000\n'
            f"interval = {args.log_interval}\n"
        )
    return "".join(lines), tokens


async def run_phase(
    name: str, ports: list[int], args: argparse.Namespace, children: Children
) -> dict[str, Any]:
    push = args.push if name == "mixed" else 0
    logs = args.logs if name == "mixed" else 0
    with tempfile.TemporaryDirectory(prefix="bench-kinds-") as tmp:
        base = Path(tmp)
        (base / "logs").mkdir()
        toml, tokens = targets_toml(ports, args, push, logs, base / "logs")
        (base / "targets.toml").write_text(toml)
        settings = load_settings(
            {
                "MONITOR_ENV_FILE": "",
                "MONITOR_TARGETS_FILE": str(base / "targets.toml"),
                "MONITOR_STATE_DIR": str(base / "state"),
                "MONITOR_EVENTS_FILE": str(base / "events.jsonl"),
                "MONITOR_HTTP_HOST": "127.0.0.1",
                "MONITOR_HTTP_PORT": str(args.port),
            },
            root=base,
        )
        # Helpers first: forking (bench.children) is safe only before the monitor's threads
        # exist. The pinger retries until the endpoint listens.
        helpers = []
        if push:
            (base / "tokens").write_text("\n".join(tokens))
            helpers.append(
                children.start(
                    [sys.executable, "-m", "bench.kinds", "--role", "pinger", "--port", str(args.port),
                     "--tokens-file", str(base / "tokens"), "--push-interval", str(args.push_interval)],
                    cwd=ROOT,
                )
            )  # fmt: skip
        if logs:
            helpers.append(
                children.start(
                    [sys.executable, "-m", "bench.kinds", "--role", "writer", "--dir", str(base / "logs"),
                     "--files", str(logs)],
                    cwd=ROOT,
                )
            )  # fmt: skip
        checker = LagChecker(Checker())
        app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()], checker=checker)
        # The checker the monitor would build itself: reading the board the /ping routes write.
        await checker.inner.close()
        checker.inner = Checker(pushes=app.monitor.pushes, state_dir=settings.state_dir)
        checker.app = app
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(args.warmup)  # every target checked a few times; the helpers at speed
        checker.recording = True
        cpu0, wall0 = cpu_now(), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu, wall = cpu_now() - cpu0, time.monotonic() - wall0
        checker.recording = False
        snapshot = app.monitor.snapshot()
        stop.set()
        await task
        app.close()
        for helper in helpers:
            children.stop(helper)
        lags = sorted(checker.http_lags)
        checks = sum(checker.counts.values())
        return {
            "phase": name,
            "http_targets": args.http,
            "push_targets": push,
            "log_targets": logs,
            "seconds": round(wall, 1),
            "checks": dict(checker.counts),
            "http_lag_p50_ms": round(1000 * (percentile(lags, 50) or 0.0), 2),
            "http_lag_p99_ms": round(1000 * (percentile(lags, 99) or 0.0), 2),
            "http_lag_max_ms": round(1000 * (lags[-1] if lags else 0.0), 2),
            "cpu_ms_per_check": round(1000 * cpu / checks, 3) if checks else None,
            "cpu_ms_per_http_check": round(1000 * cpu / checker.counts["http"], 3)
            if name == "http" and checker.counts["http"]
            else None,
            "cpu_percent": round(100 * cpu / wall, 1),
            "push_unknown_total": snapshot.push_unknown_total,
            "failures": checker.failures,
        }


# ---------------------------------------------------------------- child roles


async def pinger(port: int, tokens: list[str], every: float) -> None:
    """Ping every token once every ``every`` seconds, spread evenly, over keep-alive connections."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        round_ = 0
        sent = 0
        while True:
            for index, token in enumerate(tokens):
                due = start + (round_ + index / len(tokens)) * every
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    async with session.get(f"http://127.0.0.1:{port}/ping/{token}") as answer:
                        await answer.read()
                    sent += 1
                except aiohttp.ClientError:
                    pass
            round_ += 1


def writer(directory: Path, files: int) -> None:
    """Append 20 lines a second to each file, one in 20 a Traceback."""
    handles = [open(directory / f"app{i}.log", "a", buffering=1) for i in range(files)]  # noqa: SIM115
    tick = 0
    while True:
        started = time.monotonic()
        for handle in handles:
            line = (
                "Traceback (most recent call last):"
                if tick % 20 == 0
                else f"INFO request {tick} served in 3 ms"
            )
            handle.write(line + "\n")
        tick += 1
        time.sleep(max(0.0, 0.05 - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http", type=int, default=300)
    parser.add_argument("--push", type=int, default=1000)
    parser.add_argument("--logs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--push-interval", type=float, default=60.0, help="expected period of push targets")
    parser.add_argument("--log-interval", type=float, default=5.0, help="check interval of log targets")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--phases", default="http,mixed")
    parser.add_argument("--role", default="bench", choices=["bench", "pinger", "writer"])
    parser.add_argument("--tokens-file")
    parser.add_argument("--dir")
    parser.add_argument("--files", type=int, default=0)
    args = parser.parse_args(argv)
    install_fast_loop()
    if args.role == "pinger":
        asyncio.run(pinger(args.port, Path(args.tokens_file).read_text().split(), args.push_interval))
        return 0
    if args.role == "writer":
        writer(Path(args.dir), args.files)
        return 0
    if not args.port:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    children = Children()
    try:
        farm = children.start(
            [sys.executable, "-m", "bench.farm", "--targets", str(max(args.http, 1))],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        ports = [int(p) for p in read_ready_line(farm, 20)["ports"]]
        for phase in args.phases.split(","):
            result = asyncio.run(run_phase(phase.strip(), ports, args, children))
            print(json.dumps(result), flush=True)
    finally:
        children.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
