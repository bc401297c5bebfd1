"""Our monitor as the bench runs it: a generated targets file, its own settings, one subprocess.

Used by the ``ours`` runner and by the stress scenario, so both measure the same monitor the
same way: ``monitor_server.py`` with ``MONITOR_ENV_FILE=`` (no ``.env``), its state, events and
log in the bench's working directory, Telegram pointed at the fake Bot API, e-mail off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.children import ROOT, wait_until
from bench.context import Context, free_port
from bench.farm_control import Farm
from bench.loopback import http_json

BOT_TOKEN = "123456:BENCHbenchBENCHbench"
CHAT_ID = "4242"
# The monitor's own settings: none may leak in from the bench's environment.
SETTING_PREFIXES = (
    "TELEGRAM_", "SMTP_", "EMAIL_", "MONITOR_", "HEALTH_", "CHECK_", "FAILURE_", "REQUEST_",
    "REPEAT_", "SUCCESS_", "DIGEST_", "HEARTBEAT_",
)  # fmt: skip
# A 10,000-target start-up takes 1-2 s; two minutes means it is not coming.
START_TIMEOUT = 120.0


def target_name(index: int) -> str:
    return f"bench-{index:05d}"


def targets_toml(farm: Farm, indexes: range, interval: float, timeout: float, threshold: int) -> str:
    """The targets file text: one farm target per index, all with the same interval."""
    lines = [
        "[defaults]",
        f"interval = {interval}",
        f"timeout = {timeout}",
        f"failure_threshold = {threshold}",
        "",
    ]
    for index in indexes:
        lines += ["[[targets]]", f'name = "{target_name(index)}"', f'url = "{farm.url(index)}"', ""]
    return "\n".join(lines)


@dataclass
class MonitorProcess:
    """One running monitor and the files the bench reads back from it."""

    proc: subprocess.Popen[bytes]
    port: int
    work: Path
    targets_file: Path
    startup_seconds: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.work / "monitor.log"

    @property
    def events_path(self) -> Path:
        return self.work / "events.jsonl"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status(self, timeout: float = 30.0) -> dict[str, Any] | None:
        """``/api/status`` without the per-target history (what the bench needs, and cheaper)."""
        answer = http_json("GET", self.url("/api/status?history=0"), timeout=timeout)
        return answer if isinstance(answer, dict) else None


def monitor_env(ctx: Context, work: Path, targets_file: Path, http_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    env.update(
        {
            "MONITOR_ENV_FILE": "",
            "MONITOR_TARGETS_FILE": str(targets_file),
            "MONITOR_STATE_DIR": str(work / "state"),
            "MONITOR_EVENTS_FILE": str(work / "events.jsonl"),
            "MONITOR_LOG_FILE": str(work / "monitor.log"),
            "MONITOR_PID_FILE": str(work / "monitor.pid"),
            "MONITOR_HTTP_HOST": "127.0.0.1",
            "MONITOR_HTTP_PORT": str(http_port),
            "MONITOR_MAX_CONCURRENCY": str(ctx.args.max_concurrency),
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_CHAT_ID": CHAT_ID,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{ctx.telegram_port}",
            "SMTP_SERVER": "smtp.example.com",
            "DIGEST_AFTER": "1000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_monitor(ctx: Context, name: str, size: int, interval: float) -> MonitorProcess:
    """Start our monitor on ``size`` farm targets; returns once it answers ``/api/status``."""
    args = ctx.args
    work = ctx.tmp / name
    work.mkdir(parents=True, exist_ok=True)
    targets_file = work / "targets.toml"
    targets_file.write_text(targets_toml(ctx.farm, range(size), interval, args.timeout, args.threshold))
    port = free_port()
    env = monitor_env(ctx, work, targets_file, port)
    spawned = time.monotonic()
    with (work / "monitor.log").open("wb") as log:
        proc = ctx.children.start(
            [sys.executable, str(args.monitor)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    monitor = MonitorProcess(proc, port, work, targets_file, 0.0)
    try:
        answered = wait_until(
            lambda: proc.poll() is not None or monitor.status(10) is not None, START_TIMEOUT, 0.2
        )
        if not answered:
            raise RuntimeError(f"the monitor did not answer /api/status within {START_TIMEOUT:g} s")
        if proc.poll() is not None:
            tail = monitor.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the monitor exited with code {proc.returncode}: {tail}")
    except BaseException:
        ctx.children.stop(proc, grace=15)
        raise
    monitor.startup_seconds = time.monotonic() - spawned
    return monitor
