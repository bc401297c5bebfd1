"""--check-config and --once show each kind of check sensibly (SPEC 14), run as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKEN = "cron-backup-0123456789abcdef"


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MONITOR_ENV_FILE": "",
        "MONITOR_STATE_DIR": str(tmp_path / "state"),
        "MONITOR_EVENTS_FILE": str(tmp_path / "events.jsonl"),
        "MONITOR_HTTP_PORT": "0",
        "MONITOR_TARGETS_FILE": str(tmp_path / "targets.toml"),
    }
    return subprocess.run(
        [sys.executable, str(REPO / "monitor_server.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_targets(tmp_path: Path, tcp_port: int) -> None:
    (tmp_path / "app.log").write_text("Traceback from before\n")
    (tmp_path / "targets.toml").write_text(
        f"""
[[targets]]
name = "db"
url = "tcp://127.0.0.1:{tcp_port}"

[[targets]]
name = "backup"
push_token = "{TOKEN}"
interval = 300

[[targets]]
name = "agent"
log = "{tmp_path / "app.log"}"
patterns = ["Traceback", "ERROR"]
max_matches = 2
window = 600

[[targets]]
name = "api"
url = "https://api.example.test/health"
conditions = ["$.queue.depth < 100"]
cert_warn_days = [30, 7]
"""
    )


def test_check_config_says_what_each_kind_looks_at_and_never_the_push_token(tmp_path: Path) -> None:
    write_targets(tmp_path, 5432)
    result = cli(tmp_path, "--check-config")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.split("Targets (4):\n")[1].splitlines() if line}
    assert lines["db"].endswith("tcp: passes when a connection opens")
    assert "push://backup" in lines["backup"]
    assert lines["backup"].endswith("push: a ping expected every 5m, grace 5m (GET/POST /ping/<push_token>)")
    assert lines["agent"].endswith("log: fail when more than 2 line(s) match 'Traceback', 'ERROR' within 10m")
    assert lines["api"].endswith("expect ok, conditions $.queue.depth < 100, cert warnings at 30,7 days left")
    assert TOKEN not in result.stdout + result.stderr


def test_once_checks_tcp_and_log_targets_and_skips_push_targets(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        write_targets(tmp_path, listener.getsockname()[1])
        (tmp_path / "targets.toml").write_text(
            (tmp_path / "targets.toml").read_text().split('[[targets]]\nname = "api"')[0]
        )
        result = cli(tmp_path, "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line.strip()}
    assert rows["db"][1] == "PASS"
    assert rows["agent"][1] == "PASS" and "file readable" in " ".join(rows["agent"])
    assert rows["backup"][1] == "SKIP"
    assert result.stdout.rstrip().endswith("2 passed, 0 failed, 1 skipped")


def test_once_fails_a_missing_log_file(tmp_path: Path) -> None:
    (tmp_path / "targets.toml").write_text(
        f'[[targets]]\nname = "agent"\nlog = "{tmp_path / "gone.log"}"\npatterns = ["ERROR"]\n'
    )
    result = cli(tmp_path, "--once")
    assert result.returncode == 2
    assert "FAIL" in result.stdout and "log file missing" in result.stdout
