"""The command line behind monitor_server.py (SPEC section 8).

Exit codes: 0 clean stop / all good, 1 --test-alert not delivered everywhere, 2 --once saw a
failing target, 3 invalid settings (one line, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from keepalive import __version__
from keepalive.alerts import Alert, AlertKind
from keepalive.config import ROOT, Settings, load_settings, script_values
from keepalive.engine.replicas import owners
from keepalive.engine.share import share_line
from keepalive.errors import ConfigError
from keepalive.logfile import ReopenableRotatingFileHandler
from keepalive.probe.checker import Checker, CheckResult, printable
from keepalive.probe.kinds import describe, once_note
from keepalive.scrub import ScrubFilter, scrub

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_CHECK_FAILED = 2
EXIT_CONFIG = 3


log = logging.getLogger("keepalive")
T = TypeVar("T")


def setup_logging(level: int = logging.INFO, settings: Settings | None = None) -> None:
    """Log to stderr; with ``settings`` (the running monitor) to MONITOR_LOG_FILE instead, rotated
    by size, and to stderr as well only when that is a terminal.

    The monitor writes its log file itself so it can rotate and reopen it; start_monitor.sh sends
    stderr (a fatal traceback, say) to a separate small file, so no line is written twice."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handlers: list[logging.Handler] = []
    if settings is not None:
        handlers.append(
            ReopenableRotatingFileHandler(settings.log_file, settings.log_max_bytes, settings.log_backups)
        )
    if settings is None or sys.stderr.isatty():
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.addFilter(ScrubFilter())
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    # aiohttp's access log would write a line per status-page poll.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def raise_fd_limit() -> None:
    """Thousands of concurrent checks need thousands of sockets; lift the soft limit to the hard one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when it is installed (faster with thousands of targets), else asyncio."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="monitor_server.py",
        description="Keep-Alive Monitor: watches /health endpoints and alerts by Telegram and e-mail.",
        epilog="Settings come from the environment and .env; see README_MONITOR.md.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--once",
        action="store_true",
        help="check every target once, print a table; exit 0 all pass, 2 any fail",
    )
    mode.add_argument(
        "--check-config",
        action="store_true",
        help="validate and print the effective settings; exit 0 valid, 3 invalid",
    )
    mode.add_argument(
        "--test-alert",
        action="store_true",
        help="send one test alert through every enabled channel; exit 0 all delivered, 1 otherwise",
    )
    mode.add_argument(
        "--status",
        action="store_true",
        help="running or stopped, each target's state, the last log lines; exit 0 running, 3 stopped",
    )
    mode.add_argument(
        "--print-setting",
        nargs="+",
        metavar="NAME",
        help="for scripts: each setting's effective value (paths absolute) followed by a NUL byte; "
        "secrets are refused; exit 3 when one is invalid",
    )
    # Writes to the running monitor (SPEC 12, 13), with the token from MONITOR_STATE_DIR/api_token.
    mode.add_argument(
        "--silence",
        action="append",
        metavar="GLOB",
        help="hold the notifications of the targets matching GLOB (db-*, repeatable) for --for; "
        "prints the silence id; exit 0 done, 1 not (e.g. the monitor is not running)",
    )
    mode.add_argument("--silences", action="store_true", help="list the silences not yet expired")
    mode.add_argument("--unsilence", metavar="ID", help="end a silence now (its id or 8-character prefix)")
    mode.add_argument(
        "--remediate",
        metavar="NAME",
        help="run the target's on_down command through the running monitor and print the result; "
        "exit 0 when it exited 0, 1 otherwise",
    )
    parser.add_argument(
        "--for", dest="silence_for", metavar="DURATION", help="with --silence: 90s, 45m, 2h, 1h30m"
    )
    parser.add_argument("--comment", default="", help="with --silence: why (shown with the silence)")
    parser.add_argument("--version", action="version", version=f"keepalive-monitor {__version__}")
    args = parser.parse_args(list(argv))
    if args.silence and not args.silence_for:
        parser.error("--silence needs --for DURATION (a silence always ends)")
    if not args.silence and (args.silence_for or args.comment):
        parser.error("--for and --comment go with --silence")
    return args


def config_error(exc: ConfigError) -> int:
    # A value may hold anything .env allows: the terminal gets one line, no control characters.
    print(f"error: {printable(str(exc))}", file=sys.stderr)
    return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    if args.print_setting:
        return print_setting(args.print_setting)
    if args.status:
        return status()
    try:
        settings = load_settings()
    except ConfigError as exc:
        return config_error(exc)
    if args.check_config:
        return check_config(settings)
    if args.once:
        return run_once(settings)
    if args.test_alert:
        return test_alert(settings)
    if args.silence or args.silences or args.unsilence:
        from keepalive import client

        if args.silence:
            return client.silence(settings, args.silence, args.silence_for, args.comment)
        if args.silences:
            return client.list_silences(settings)
        return client.unsilence(settings, args.unsilence)
    if args.remediate:
        from keepalive.actions.cli_remediate import remediate

        return remediate(settings, args.remediate)
    try:
        setup_logging(settings=settings)
    except OSError as exc:
        name = repr(str(settings.log_file))
        return config_error(ConfigError(f"MONITOR_LOG_FILE={name} cannot be written: {exc.strerror}"))
    return serve(settings)


# ---------------------------------------------------------------------- for the scripts


def print_setting(names: Sequence[str]) -> int:
    """Values for the shell scripts, each ended by NUL: a value is data to them, never code
    (a newline or `$(...)` in .env must not run anything), and NUL is the one byte no value holds."""
    try:
        values = script_values(names)
    except ConfigError as exc:
        return config_error(exc)
    sys.stdout.write("".join(f"{value}\0" for value in values))
    return EXIT_OK


STATUS_PATHS = (
    "MONITOR_PID_FILE",
    "MONITOR_LOG_FILE",
    "MONITOR_STATE_DIR",
    "MONITOR_HTTP_HOST",
    "MONITOR_HTTP_PORT",
)


def status() -> int:
    """--status: works with invalid settings too (the monitor may still run): those it can read,
    else the defaults, and the error shown."""
    from keepalive.process import ProcessTable
    from keepalive.status_report import StatusPaths, report

    error: str | None = None
    try:
        load_settings()
    except ConfigError as exc:
        error = str(exc)
    try:
        values = script_values(STATUS_PATHS)
    except ConfigError:
        values = script_values(STATUS_PATHS, {"MONITOR_ENV_FILE": ""})
    pid_file, log_file, state_dir, host, port = values
    paths = StatusPaths(
        script=ROOT / "monitor_server.py",
        pid_file=Path(pid_file),
        log_file=Path(log_file),
        state_dir=Path(state_dir),
        http_host=host,
        http_port=int(port),
        config_error=error,
    )
    return report(paths, sys.stdout, ProcessTable(), now=time.time())


# ---------------------------------------------------------------------- --check-config


def check_config(settings: Settings) -> int:
    print("Keep-Alive Monitor: settings are valid\n")
    width = max(len(name) for name, _ in settings.effective())
    for name, value in settings.effective():
        print(f"  {name:<{width}}  {printable(value)}")
    print("\nChannels:")
    for channel in settings.channels():
        print(f"  {channel.name:<12} {'on ' if channel.enabled else 'off'}  {channel.why}")
    print(f"\nReplica:\n  {share_line(settings)}")
    membership = settings.fanout.membership
    print(f"\nTargets ({len(settings.targets)}):")
    for t in settings.targets:
        extra = f" max_latency={t.max_latency_ms:g}ms" if t.max_latency_ms else ""
        if membership.enabled:
            # Who checks it: the same answer on every replica (SPEC 17).
            checkers = owners(t.name, membership.replicas, membership.effective_copies)
            mine = " (this one)" if membership.name in checkers else ""
            extra += f" checked by {', '.join(checkers)}{mine}"
        kind = printable(describe(t))  # what this kind of check looks at (SPEC 14)
        print(
            f"  {printable(t.name)}  {printable(t.public_url)}  every {t.interval:g}s timeout {t.timeout:g}s "
            f"alert after {t.failure_threshold} fail(s), recover after {t.success_threshold} pass(es), "
            f"{kind}{extra}{' reuse-connection' if t.reuse_connection else ''}"
        )
    return EXIT_OK


# ---------------------------------------------------------------------- --once


def run_once(settings: Settings) -> int:
    async def check_all() -> list[CheckResult | None]:
        checker = Checker()
        sem = asyncio.Semaphore(settings.max_concurrency)

        async def one(target: Any) -> CheckResult | None:
            if target.kind == "push":
                return None  # its pings go to the running monitor, not to this process
            async with sem:
                return await checker.check(target)

        try:
            return list(await asyncio.gather(*(one(t) for t in settings.targets)))
        finally:
            await checker.close()

    outcomes = run_async(check_all)
    rows = [
        (
            # A name may hold anything TOML allows; the terminal gets no control characters.
            printable(t.name),
            "PASS" if r.ok else "FAIL",
            "-" if r.latency_ms is None else f"{r.latency_ms:.0f} ms",
            r.reason or once_note(t),
            printable(t.public_url),
        )
        if r is not None
        else (printable(t.name), "SKIP", "-", "push target: judged by the running monitor from its pings", "")
        for t, r in zip(settings.targets, outcomes, strict=True)
    ]
    results = [r for r in outcomes if r is not None]
    skipped = len(outcomes) - len(results)
    header = ("TARGET", "RESULT", "LATENCY", "REASON", "URL")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    failed = sum(1 for r in results if not r.ok)
    print(f"\n{len(results) - failed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return EXIT_CHECK_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------- --test-alert


def test_alert(settings: Settings) -> int:
    import socket

    from keepalive.notifiers.base import NotifyError
    from keepalive.notifiers.factory import build_notifiers

    now = time.time()
    alert = Alert(
        id=f"test-{int(now)}",
        kind=AlertKind.TEST,
        target="test-alert",
        url=settings.targets[0].url,
        reason="this is a test alert from --test-alert; no target is down",
        since=now,
        at=now,
        failed_checks=0,
        downtime=None,
        host=socket.gethostname(),
    )
    print(settings.channel_summary())
    all_ok = True
    for notifier in build_notifiers(settings):
        for recipient in notifier.recipients():
            try:
                message_id = notifier.send(recipient, [alert])
            except NotifyError as exc:
                all_ok = False
                kind = "permanent" if exc.permanent else "temporary"
                print(f"  {notifier.channel:<9} {recipient}: FAILED ({kind}): {scrub(exc.reason)}")
            except Exception as exc:  # a notifier bug is reported, never a traceback
                all_ok = False
                print(f"  {notifier.channel:<9} {recipient}: FAILED: {scrub(f'{type(exc).__name__}: {exc}')}")
            else:
                suffix = f" (message id {message_id})" if message_id else ""
                print(f"  {notifier.channel:<9} {recipient}: delivered{suffix}")
    return EXIT_OK if all_ok else EXIT_NOT_DELIVERED


# ---------------------------------------------------------------------- serve


def serve(settings: Settings) -> int:
    from keepalive.engine.app import SWITCH_INTERVAL, MonitorApp

    raise_fd_limit()
    # Worker threads (reload parsing, the web's renders) hold the GIL for up to this long when the
    # loop wants it back: 1 ms instead of the default 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        app = MonitorApp.build(settings)
    except ConfigError as exc:
        return config_error(exc)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        reloads: set[asyncio.Task[None]] = set()

        def on_stop(signame: str) -> None:
            if not stop.is_set():
                log.info("received %s, stopping", signame)
            stop.set()

        def on_reload() -> None:
            # Read off the loop; the handler only starts it (and keeps a reference to it).
            task = loop.create_task(app.reload(), name="reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, on_reload)
        try:
            await app.run(stop)
        finally:
            for task in reloads:
                task.cancel()
            await asyncio.gather(*reloads, return_exceptions=True)

    try:
        run_async(run)
    except ConfigError as exc:
        app.events.emit("monitor_start_failed", error=str(exc))
        return config_error(exc)
    finally:
        app.close()
    return EXIT_OK
