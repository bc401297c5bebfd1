"""``--remediate NAME`` against the real monitor process, and a monitor stopped while a command
runs: the command gets half the stop grace, then its process group is killed."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.engine import toml_targets
from tests.fakes.targets import TargetServer
from tests.monitor_proc import MonitorProcess, base_env, free_port, run_cli, wait_until


@pytest.fixture
def server() -> Iterator[TargetServer]:
    with TargetServer() as running:
        yield running


def env_for(tmp_path: Path, entries: list[dict[str, object]], **extra: str) -> dict[str, str]:
    targets = tmp_path / "targets.toml"
    targets.write_text(toml_targets(*entries))
    return base_env(
        tmp_path,
        MONITOR_TARGETS_FILE=str(targets),
        MONITOR_HTTP_HOST="127.0.0.1",
        MONITOR_HTTP_PORT=str(free_port()),
        **extra,
    )


def test_remediate_runs_the_command_through_the_running_monitor(tmp_path: Path, server: TargetServer) -> None:
    code = "print('stopping tq'); print('starting tq')"
    entry = {
        "name": "tq-server",
        "url": server.url("tq"),
        "interval": 1,
        "on_down": [sys.executable, "-c", code],
    }
    env = env_for(tmp_path, [entry])
    monitor = MonitorProcess(tmp_path, env).start()
    try:
        done = run_cli(["--remediate", "TQ-Server"], env)
        missing = run_cli(["--remediate", "nope"], env)
        finished = monitor.wait_event("remediation_finished")
    finally:
        monitor.stop()
    assert done.returncode == 0, done.stderr
    first, *output = done.stdout.splitlines()
    assert first.startswith(f"tq-server: restarted by `{sys.executable} -c ") and " exit 0 in " in first
    assert output == ["  | stopping tq", "  | starting tq"]
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: refused (HTTP 404): no target named 'nope'"
    assert finished[0]["trigger"].startswith("api:") and finished[0]["exit_code"] == 0
    # The monitor is gone: the command line says so in one line.
    gone = run_cli(["--remediate", "tq-server"], env)
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: the monitor is not running (nothing answers on http://127.0.0.1:")


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_a_monitor_stopped_mid_command_gives_it_half_the_grace_then_kills_its_group(
    tmp_path: Path, server: TargetServer
) -> None:
    pid_file = tmp_path / "command.pid"
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    entry = {
        "name": "stuck",
        "url": server.url("stuck"),
        "interval": 0.3,
        "failure_threshold": 1,
        "on_down": [sys.executable, "-c", code],
    }
    server.set_mode("stuck", "http503")
    env = env_for(tmp_path, [entry], STOP_GRACE_SECONDS="4")
    monitor = MonitorProcess(tmp_path, env).start()
    try:
        monitor.wait_event("remediation_started")
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the command's pid"))
        # Within stop_monitor.sh's patience, not after the command's 60 s remediation_timeout.
        code_at_exit = monitor.stop(timeout=30)
    finally:
        monitor.kill()
    assert code_at_exit == 0, monitor.log()
    (finished,) = monitor.events("remediation_finished")
    assert (finished["outcome"], finished["exit_code"]) == ("interrupted", -signal.SIGKILL)
    assert finished["error"] == "the monitor stopped; its process group was killed"
    assert not group_alive(pid)
