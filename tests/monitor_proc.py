"""Run the real monitor as a subprocess in a temporary directory, and read what it wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def base_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """An environment that keeps everything the monitor writes inside ``workdir``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "SMTP_", "EMAIL_", "MONITOR_"))
    }
    env.update(
        {
            "MONITOR_ENV_FILE": "",
            "MONITOR_STATE_DIR": str(workdir / "state"),
            "MONITOR_EVENTS_FILE": str(workdir / "events.jsonl"),
            "MONITOR_LOG_FILE": str(workdir / "monitor.log"),
            "MONITOR_PID_FILE": str(workdir / "monitor.pid"),
            "MONITOR_HTTP_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class MonitorProcess:
    """``python monitor_server.py`` with its output in ``workdir/monitor.log``."""

    def __init__(self, workdir: Path, env: Mapping[str, str], args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.events_path = Path(self.env["MONITOR_EVENTS_FILE"])
        self.log_path = workdir / "monitor.log"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MonitorProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [PYTHON, str(ROOT / "monitor_server.py"), *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.events("monitor_started") or self.proc_exited(), what="monitor_started")
        assert self.proc.poll() is None, f"monitor exited at start:\n{self.log()}"
        return self

    def proc_exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Events written so far, optionally only those named ``name`` with fields equal to ``match``."""
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        # The monitor may be writing the last line right now: only whole lines count.
        lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
        found = []
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            if name is not None and record.get("event") != name:
                continue
            if all(record.get(k) == v for k, v in match.items()):
                found.append(record)
        return found

    def wait_event(
        self, name: str, count: int = 1, timeout: float = 30.0, **match: Any
    ) -> list[dict[str, Any]]:
        def ready() -> list[dict[str, Any]] | None:
            if self.proc_exited():
                raise AssertionError(f"monitor exited while waiting for {name}:\n{self.log()}")
            found = self.events(name, **match)
            return found if len(found) >= count else None

        result: list[dict[str, Any]] = wait_until(ready, timeout, what=f"{count} x {name} {match}")
        return result

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait at most ``timeout`` seconds; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if hasattr(self, "_log"):
            self._log.close()


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, str(ROOT / "monitor_server.py"), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
