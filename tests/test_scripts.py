"""start_monitor.sh, stop_monitor.sh and status_monitor.sh, run for real in a copy of the repo.

Each test copies the repository's files to a temporary directory (so PID, log and state files
never touch the working tree) and gives the copy a ``.venv`` made of symlinks to the venv
running these tests, with the requirements hash that ``ensure_venv`` expects, so nothing is
installed. The monitor watches a loopback target and serves its own endpoint on a free port.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.targets import TargetServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SCRIPT_TIMEOUT = 60
# Settings that must come from each test, never from the developer's shell.
SETTING_PREFIXES = ("MONITOR_", "HEALTH_CHECK_URL", "CHECK_INTERVAL", "FAILURE_THRESHOLD", "REQUEST_TIMEOUT")
SETTING_NAMES = {
    "REPEAT_ALERTS",
    "SUCCESS_THRESHOLD",
    "DIGEST_AFTER",
    "HEARTBEAT_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "TELEGRAM_API_URL",
    "SMTP_SERVER",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_SECURITY",
    "EMAIL_SENDER",
    "EMAIL_RECIPIENT",
    "PYTHON",
    "DEMO_PORT",
    "STOP_GRACE_SECONDS",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SKIP_DIRS = {".git", ".venv", "state", "logs", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def repo_files() -> list[str]:
    """Tracked files plus new, not ignored ones, as they are in the working tree."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy the tree
        return [
            str(path.relative_to(REPO))
            for path in REPO.rglob("*")
            if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(REPO).parts)
        ]
    return [name for name in out.decode().split("\0") if name]


def link_venv(copy: Path) -> None:
    """A .venv in ``copy`` whose entries link to the running venv: Python finds pyvenv.cfg
    beside the unresolved bin/ path, so it runs as a venv rooted in the copy."""
    source = Path(sys.prefix) if sys.prefix != sys.base_prefix else REPO / ".venv"
    venv = copy / ".venv"
    venv.mkdir()
    for entry in source.iterdir():
        if entry.name != ".requirements.sha256":
            (venv / entry.name).symlink_to(entry)
    digest = hashlib.sha256((copy / "requirements.txt").read_bytes()).hexdigest()
    (venv / ".requirements.sha256").write_text(digest + "\n")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("State:")
        )
    except (OSError, StopIteration):
        return []
    return [] if state in ("Z", "X") else raw.decode(errors="replace").split("\0")


def processes_running(script: Path) -> list[int]:
    """Live processes whose arguments include ``script`` (exactly)."""
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(script) in cmdline(int(p.name))
    ]


def wait_until(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Repo:
    root: Path
    env: dict[str, str]
    target: TargetServer

    @property
    def pid_file(self) -> Path:
        return self.root / "monitor.pid"

    @property
    def monitor_script(self) -> Path:
        return self.root / "monitor_server.py"

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / script), *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
        )

    def monitors(self) -> list[int]:
        return processes_running(self.monitor_script)


@pytest.fixture
def repo(tmp_path: Path, target_server: TargetServer) -> Iterator[Repo]:
    root = tmp_path / "repo"
    for name in repo_files():
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    link_venv(root)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SETTING_PREFIXES) and key not in SETTING_NAMES
    }
    env.update(
        MONITOR_ENV_FILE="",
        HEALTH_CHECK_URL=target_server.url("game"),
        CHECK_INTERVAL_SECONDS="600",
        REQUEST_TIMEOUT="2",
        MONITOR_HTTP_HOST="127.0.0.1",
        MONITOR_HTTP_PORT=str(free_port()),
    )
    repo = Repo(root, env, target_server)
    try:
        yield repo
    finally:
        # Whatever a failed test left running: only processes of this temporary copy.
        for script in (repo.monitor_script, root / "example_server.py"):
            for pid in processes_running(script):
                os.kill(pid, signal.SIGKILL)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_start_status_stop_lifecycle(repo: Repo) -> None:
    started = repo.run("start_monitor.sh")
    assert started.returncode == 0, output(started)
    pid = int(repo.pid_file.read_text())
    assert repo.monitors() == [pid]
    assert f"PID {pid}" in started.stdout
    assert str(repo.root / "monitor.log") in started.stdout
    assert f"http://127.0.0.1:{repo.env['MONITOR_HTTP_PORT']}/" in started.stdout

    second = repo.run("start_monitor.sh")
    assert second.returncode == 1
    assert f"already running (PID {pid})" in output(second)
    assert repo.monitors() == [pid]

    # The monitor checks at once; its table shows the target once the check is recorded.
    assert repo.target.wait_for_requests("game", 1, timeout=30)
    target_name = repo.target.url("game").split("/")[2]

    def status_shows_target_up() -> bool:
        result = repo.run("status_monitor.sh")
        assert result.returncode == 0, output(result)
        return any(target_name in line and " up " in f" {line} " for line in result.stdout.splitlines())

    wait_until(status_shows_target_up, what="status_monitor.sh to show the target up")
    status = repo.run("status_monitor.sh")
    assert f"running (PID {pid}" in status.stdout
    assert "Last 10 lines" in status.stdout

    stopped = repo.run("stop_monitor.sh")
    assert stopped.returncode == 0, output(stopped)
    assert repo.monitors() == []
    assert not repo.pid_file.exists()

    after = repo.run("status_monitor.sh")
    assert after.returncode == 3, output(after)
    assert "stopped" in after.stdout
    # Stopped: the table comes from the state file the monitor saved on its way out.
    assert target_name in after.stdout


def test_stop_and_status_when_never_started(repo: Repo) -> None:
    stopped = repo.run("stop_monitor.sh")
    assert stopped.returncode == 0, output(stopped)
    assert "not running" in stopped.stdout

    status = repo.run("status_monitor.sh")
    assert status.returncode == 3
    assert "stopped" in status.stdout


def test_status_shows_saved_names_without_control_characters(repo: Repo) -> None:
    state_dir = repo.root / "saved-state"
    state_dir.mkdir()
    record = {
        "url": "http://u:pw-in-url@x/\x1b]0;title\x07",
        "status": "down",
        "last_reason": "bad\rline\x9b2J",
    }
    document = {"version": 1, "saved_at": time.time(), "targets": {"evil\x1b[2Jname\x9b31m": record}}
    (state_dir / "state.json").write_text(json.dumps(document))
    (repo.root / "monitor.log").write_text("line one\nlog \x1b[31mred\x9b0m\n")
    status = repo.run("status_monitor.sh", MONITOR_STATE_DIR=str(state_dir))
    assert status.returncode == 3, output(status)
    assert "evil [2Jname 31m" in status.stdout and "bad line 2J" in status.stdout
    assert "log  [31mred 0m" in status.stdout
    assert "http://u:***@x/" in status.stdout and "pw-in-url" not in status.stdout
    # C0 (ESC, BEL, CR) and C1 (U+009B is CSI, U+009D OSC): none reaches the terminal.
    assert not any(ch in status.stdout for ch in "\x1b\x07\r\x9b\x9d")


@pytest.fixture
def unrelated_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_stale_pid_file_never_gets_another_process_signalled(
    repo: Repo, unrelated_process: subprocess.Popen[bytes]
) -> None:
    repo.pid_file.write_text(f"{unrelated_process.pid}\n")

    status = repo.run("status_monitor.sh")
    assert status.returncode == 3
    assert f"names PID {unrelated_process.pid}, which is not this monitor" in status.stdout

    stopped = repo.run("stop_monitor.sh")
    assert stopped.returncode == 0, output(stopped)
    assert f"Stale PID file: PID {unrelated_process.pid} is not this monitor" in stopped.stdout
    assert unrelated_process.poll() is None
    assert not repo.pid_file.exists()

    # start_monitor.sh treats the stale file as "not running" and replaces it.
    repo.pid_file.write_text(f"{unrelated_process.pid}\n")
    started = repo.run("start_monitor.sh")
    assert started.returncode == 0, output(started)
    assert "stale PID file" in started.stdout
    pid = int(repo.pid_file.read_text())
    assert pid != unrelated_process.pid
    assert repo.monitors() == [pid]

    assert repo.run("stop_monitor.sh").returncode == 0
    assert repo.monitors() == []
    assert unrelated_process.poll() is None


def test_a_process_that_merely_names_the_script_is_not_the_monitor(repo: Repo) -> None:
    # An operator reading the script (tail, less, an editor) has its path on the command line.
    reader = subprocess.Popen(["tail", "-f", str(repo.monitor_script)], stdout=subprocess.DEVNULL)
    try:
        repo.pid_file.write_text(f"{reader.pid}\n")
        status = repo.run("status_monitor.sh")
        assert status.returncode == 3, output(status)
        stopped = repo.run("stop_monitor.sh")
        assert stopped.returncode == 0, output(stopped)
        assert reader.poll() is None
    finally:
        reader.kill()
        reader.wait(timeout=10)


def test_a_pid_file_naming_a_dead_process_is_removed(repo: Repo) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    repo.pid_file.write_text(f"{dead.pid}\n")

    stopped = repo.run("stop_monitor.sh")

    assert stopped.returncode == 0, output(stopped)
    assert not repo.pid_file.exists()


def test_a_monitor_without_pid_file_is_found(repo: Repo) -> None:
    assert repo.run("start_monitor.sh").returncode == 0
    pid = int(repo.pid_file.read_text())
    repo.pid_file.unlink()

    again = repo.run("start_monitor.sh")
    assert again.returncode == 1
    assert f"without a PID file (PID {pid})" in output(again)
    assert repo.run("status_monitor.sh").returncode == 0

    stopped = repo.run("stop_monitor.sh")
    assert stopped.returncode == 0, output(stopped)
    assert repo.monitors() == []


def test_an_invalid_setting_stops_the_start_with_the_setting_named(repo: Repo) -> None:
    result = repo.run("start_monitor.sh", FAILURE_THRESHOLD="zero")

    assert result.returncode == 1
    assert "FAILURE_THRESHOLD='zero' is invalid" in result.stderr
    assert "Traceback" not in output(result)
    assert not repo.pid_file.exists()
    assert repo.monitors() == []


def test_a_taken_http_port_stops_the_start(repo: Repo) -> None:
    taken = str(repo.target.port)  # the target server answers any path, /health included

    result = repo.run("start_monitor.sh", MONITOR_HTTP_PORT=taken)

    assert result.returncode == 1
    assert f"MONITOR_HTTP_PORT={taken} is already in use" in result.stderr
    assert not repo.pid_file.exists()
    assert repo.monitors() == []


def test_an_unknown_option_is_refused(repo: Repo) -> None:
    result = repo.run("start_monitor.sh", "--bogus")

    assert result.returncode == 1
    assert "unknown option: --bogus" in result.stderr
    assert repo.monitors() == []


def test_demo_starts_the_example_server_and_stop_ends_both(repo: Repo) -> None:
    demo_port = free_port()
    started = repo.run("start_monitor.sh", "--demo", DEMO_PORT=str(demo_port))
    assert started.returncode == 0, output(started)
    example_pid = int((repo.root / "example_server.pid").read_text())
    assert processes_running(repo.root / "example_server.py") == [example_pid]
    assert "kill $(cat example_server.pid)" in started.stdout
    assert f"http://127.0.0.1:{demo_port}/health every 3 s" in started.stdout

    status = repo.run("status_monitor.sh", DEMO_PORT=str(demo_port))
    assert status.returncode == 0, output(status)
    assert f"127.0.0.1:{demo_port}" in status.stdout

    stopped = repo.run("stop_monitor.sh")
    assert stopped.returncode == 0, output(stopped)
    assert f"Stopped the example server (PID {example_pid})" in stopped.stdout
    assert repo.monitors() == []
    assert processes_running(repo.root / "example_server.py") == []
    assert not (repo.root / "example_server.pid").exists()


def test_the_venv_is_rebuilt_when_requirements_change(repo: Repo) -> None:
    # Only the hash differs: pip finds everything installed and needs no network.
    (repo.root / ".venv" / ".requirements.sha256").write_text("0" * 64 + "\n")

    result = repo.run("stop_monitor.sh")  # does not install; only start_monitor.sh does
    assert result.returncode == 0
    started = repo.run("start_monitor.sh")

    assert started.returncode == 0, output(started)
    assert "requirements.txt changed" in started.stdout
    digest = hashlib.sha256((repo.root / "requirements.txt").read_bytes()).hexdigest()
    assert (repo.root / ".venv" / ".requirements.sha256").read_text().strip() == digest
    assert repo.run("stop_monitor.sh").returncode == 0


def test_a_too_old_python_is_refused_with_a_clear_error(repo: Repo, tmp_path: Path) -> None:
    fake = tmp_path / "python3.8"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    shutil.rmtree(repo.root / ".venv")

    result = repo.run("start_monitor.sh", PYTHON=str(fake))

    assert result.returncode == 1
    assert "needs 3.11 or newer" in result.stderr
    assert not (repo.root / ".venv").exists()


MARKER = "pwned-marker"


@pytest.mark.parametrize(
    ("dotenv_value", "literal"),
    [
        # Two lines: the second one, were it ever evaluated, would assign and run the command.
        (f'"x.log\\nMONITOR_PID_FILE=$(touch {MARKER})"', None),
        # One line each: a file name with odd characters, nothing more.
        (f"'$(touch {MARKER}).log'", f"$(touch {MARKER}).log"),
        (f'"`touch {MARKER}`;touch {MARKER}"', f"`touch {MARKER}`;touch {MARKER}"),
    ],
)
def test_no_setting_is_ever_evaluated_by_a_shell(
    repo: Repo, tmp_path: Path, dotenv_value: str, literal: str | None
) -> None:
    env_file = tmp_path / "hostile.env"
    env_file.write_text(f"MONITOR_LOG_FILE={dotenv_value}\nSMTP_PASSWORD={dotenv_value}\n")

    results = [
        repo.run(script, MONITOR_ENV_FILE=str(env_file))
        for script in ("start_monitor.sh", "status_monitor.sh", "stop_monitor.sh", "status_monitor.sh")
    ]

    everything = "\n".join(output(r) for r in results)
    assert not (repo.root / MARKER).exists(), everything
    assert not (tmp_path / MARKER).exists(), everything
    assert repo.monitors() == []
    assert "Traceback" not in everything
    assert "command not found" not in everything
    started, status, stopped, after = results
    assert stopped.returncode == 0, output(stopped)
    assert after.returncode == 3, output(after)
    if literal is None:  # a path with a newline is refused in one line, and nothing starts
        assert started.returncode == 1
        assert (
            "MONITOR_LOG_FILE='x.log\\nMONITOR_PID_FILE=$(touch pwned-marker)' is invalid" in started.stderr
        )
        assert "expected a path without control characters" in started.stderr
        assert "settings: MONITOR_LOG_FILE=" in status.stdout
    else:  # taken literally: the monitor ran and wrote its log to a file of exactly that name
        assert started.returncode == 0, output(started)
        assert status.returncode == 0, output(status)
        assert f"Last 10 lines of {repo.root / literal}" in status.stdout
        assert (repo.root / literal).stat().st_size > 0


def test_the_monitor_writes_its_own_log_and_nohup_only_crash_output(repo: Repo) -> None:
    started = repo.run("start_monitor.sh", MONITOR_LOG_MAX_BYTES="64KiB")
    assert started.returncode == 0, output(started)
    log = repo.root / "monitor.log"
    crash = repo.root / "monitor.log.stderr"
    assert f"crash output: {crash}" in started.stdout
    wait_until(
        lambda: log.exists() and "channels on=[" in log.read_text(), what="the monitor's first log lines"
    )

    assert repo.run("stop_monitor.sh").returncode == 0
    lines = log.read_text().splitlines()
    # Each line once, in the file the monitor writes, none through nohup's stderr.
    assert sum("channels on=[" in line for line in lines) == 1
    assert "channels on=[" not in crash.read_text()
    assert all(line[:4].isdigit() and line[10] == "T" for line in lines), lines


def test_a_secret_from_a_file_is_used_and_never_shown(repo: Repo, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("fi1e-secret-pw\n")
    checked = subprocess.run(
        [str(repo.root / ".venv" / "bin" / "python"), str(repo.monitor_script), "--check-config"],
        cwd=repo.root,
        env={**repo.env, "SMTP_PASSWORD_FILE": str(secret)},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert checked.returncode == 0, output(checked)
    assert "*** (set) from SMTP_PASSWORD_FILE" in checked.stdout
    assert "fi1e-secret-pw" not in output(checked)

    missing = subprocess.run(
        [str(repo.root / ".venv" / "bin" / "python"), str(repo.monitor_script), "--check-config"],
        cwd=repo.root,
        env={**repo.env, "SMTP_PASSWORD_FILE": str(tmp_path / "nope")},
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert missing.returncode == 3
    assert (
        missing.stderr
        == f"error: SMTP_PASSWORD_FILE='{tmp_path / 'nope'}' cannot be read: No such file or directory\n"
    )


def test_the_scripts_hold_no_python_and_no_eval() -> None:
    for name in ("start_monitor.sh", "stop_monitor.sh", "status_monitor.sh", "scripts/common.sh"):
        text = (REPO / name).read_text()
        # No heredoc (the Python used to hide in them); a here-string (<<<) is fine.
        assert not re.search(r"(?<!<)<<-?\s*['\"]?[A-Za-z_]", text), name
        assert not re.search(r"(PY|python3?)\"?\s+-c\s", text), name  # no inline Python either
        assert not re.search(r"\beval\b", text), name


def test_sighup_after_logrotate_renamed_the_files_writes_to_new_ones(repo: Repo) -> None:
    started = repo.run("start_monitor.sh")
    assert started.returncode == 0, output(started)
    pid = int(repo.pid_file.read_text())
    log = repo.root / "monitor.log"
    events = repo.root / "logs" / "monitor_events.jsonl"
    wait_until(lambda: log.exists() and log.stat().st_size > 0, what="the first log lines")
    wait_until(lambda: events.exists() and events.stat().st_size > 0, what="the first events")
    log.rename(repo.root / "monitor.log.old")
    events.rename(repo.root / "logs" / "monitor_events.jsonl.old")

    os.kill(pid, signal.SIGHUP)  # what logrotate's postrotate (systemctl reload) sends

    # The reload itself writes a log line and an event: both land in new files by the old names.
    wait_until(lambda: log.exists() and log.stat().st_size > 0, what="a line in a new monitor.log")
    wait_until(lambda: events.exists() and events.stat().st_size > 0, what="an event in a new events file")
    assert repo.monitors() == [pid]
    assert repo.run("stop_monitor.sh").returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_scripts_pass_shellcheck() -> None:
    scripts = ["start_monitor.sh", "stop_monitor.sh", "status_monitor.sh", "scripts/common.sh"]
    result = subprocess.run(
        ["shellcheck", "-x", *scripts], cwd=REPO, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT
    )
    assert result.returncode == 0, result.stdout + result.stderr
