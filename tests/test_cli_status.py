"""`monitor_server.py --status`: process identity from a /proc laid out in a temporary
directory, targets from /api/status (a fetch passed in) or the state file, the log's end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keepalive.probe.checker import printable
from keepalive.process import ProcessTable
from keepalive.status_report import (
    EXIT_RUNNING,
    EXIT_STOPPED,
    StatusPaths,
    format_uptime,
    local_url,
    report,
    tail_lines,
)

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path("/srv/keepalive/monitor_server.py")
NOW = 1_763_000_000.0


class FakeProc:
    """A directory shaped like /proc: <pid>/cmdline, status, stat, and uptime."""

    def __init__(self, root: Path, uptime: float = 10_000.0) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "uptime").write_text(f"{uptime:.2f} 1234.00\n")

    def add(self, pid: int, argv: list[str], state: str = "S", start_ticks: int = 100 * 9_000) -> None:
        base = self.root / str(pid)
        base.mkdir()
        (base / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
        (base / "status").write_text(f"Name:\tpython3\nState:\t{state} (sleeping)\n")
        fields = ["S", "1"] + ["0"] * 17 + [str(start_ticks)] + ["0"] * 30
        (base / "stat").write_text(f"{pid} (python3 (odd) name) {' '.join(fields)}\n")

    def table(self) -> ProcessTable:
        return ProcessTable(self.root, ticks_per_second=100)


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


def make_paths(tmp_path: Path, http_port: int = 5005, error: str | None = None) -> StatusPaths:
    return StatusPaths(
        script=SCRIPT,
        pid_file=tmp_path / "monitor.pid",
        log_file=tmp_path / "monitor.log",
        state_dir=tmp_path / "state",
        http_host="0.0.0.0",
        http_port=http_port,
        config_error=error,
    )


def no_fetch(url: str) -> Any:
    raise AssertionError(f"fetched {url} although the monitor does not run")


def run(paths: StatusPaths, proc: FakeProc, fetch: Any = no_fetch) -> tuple[int, str]:
    out = io.StringIO()
    code = report(paths, out, proc.table(), fetch, now=NOW)
    return code, out.getvalue()


# ---------------------------------------------------------------------- which process


@pytest.mark.parametrize(
    ("argv", "daemon"),
    [
        (["/srv/keepalive/.venv/bin/python", str(SCRIPT)], True),
        (["python3.11", "-u", str(SCRIPT)], True),
        (["/usr/bin/python3", str(SCRIPT), "--once"], False),
        (["/usr/bin/python3", str(SCRIPT), "--status"], False),
        (["tail", "-f", str(SCRIPT)], False),
        (["/usr/bin/python3", "/elsewhere/monitor_server.py"], False),
        (["/usr/bin/python3", "other.py", str(SCRIPT)], False),
    ],
)
def test_only_python_running_our_script_alone_is_the_monitor(
    proc: FakeProc, argv: list[str], daemon: bool
) -> None:
    proc.add(4242, argv)
    assert proc.table().is_daemon(4242, SCRIPT) is daemon


def test_a_zombie_is_not_running(proc: FakeProc) -> None:
    proc.add(4242, ["python3", str(SCRIPT)], state="Z")
    assert proc.table().is_daemon(4242, SCRIPT) is False
    assert proc.table().daemons(SCRIPT) == []


def test_uptime_comes_from_the_start_time(proc: FakeProc) -> None:
    proc.add(4242, ["python3", str(SCRIPT)], start_ticks=100 * 6_000)  # started at 6,000 s after boot
    assert proc.table().uptime(4242) == pytest.approx(4_000.0)
    assert proc.table().uptime(999) is None


def test_the_real_proc_knows_this_process(tmp_path: Path) -> None:
    table = ProcessTable()
    assert table.cmdline(os.getpid()) is not None
    uptime = table.uptime(os.getpid())
    assert uptime is not None and uptime >= 0
    # The test runner is Python, but it does not run the monitor's script.
    assert table.runs_script(os.getpid(), SCRIPT) is False


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "?"),
        (5.9, "00:05"),
        (65, "01:05"),
        (3_600 * 5 + 62, "05:01:02"),
        (86_400 * 3 + 61, "3d 00:01:01"),
    ],
)
def test_uptime_reads_like_ps(seconds: float | None, shown: str) -> None:
    assert format_uptime(seconds) == shown


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:5005/api/status"),
        ("", "http://127.0.0.1:5005/api/status"),
        ("::", "http://[::1]:5005/api/status"),
        ("::1", "http://[::1]:5005/api/status"),
        ("192.0.2.7", "http://192.0.2.7:5005/api/status"),
    ],
)
def test_the_local_url_reaches_a_wildcard_address_on_loopback(host: str, url: str) -> None:
    assert local_url(host, 5005, "/api/status") == url


# ---------------------------------------------------------------------- the report


def test_running_with_its_pid_file_shows_live_targets(tmp_path: Path, proc: FakeProc) -> None:
    proc.add(4242, ["python3", str(SCRIPT)], start_ticks=100 * 6_000)
    paths = make_paths(tmp_path)
    paths.pid_file.write_text("4242\n")
    fetched: list[str] = []

    def fetch(url: str) -> Any:
        fetched.append(url)
        return {
            "targets": [
                {
                    "name": "api",
                    "url": "http://ops:hunter22@api.test/health",
                    "state": "down",
                    "consecutive_failures": 3,
                    "last_check": "2025-11-13T02:13:20.000Z",
                    "last_latency_ms": 12.4,
                    "last_reason": "HTTP 503",
                }
            ]
        }

    code, text = run(paths, proc, fetch)

    assert code == EXIT_RUNNING
    assert fetched == ["http://127.0.0.1:5005/api/status"]
    lines = text.splitlines()
    assert lines[0] == "Keep-Alive Monitor: running (PID 4242, up 01:06:40)"
    assert lines[2] == "Targets (live from http://127.0.0.1:5005/api/status):"
    assert lines[3].split() == [
        "TARGET",
        "STATE",
        "FAILS",
        "LAST",
        "CHECK",
        "LATENCY",
        "LAST",
        "REASON",
        "URL",
    ]
    row = lines[4].split("  ")
    assert [cell.strip() for cell in row if cell.strip()][:3] == ["api", "down", "3"]
    assert "12 ms" in lines[4] and "HTTP 503" in lines[4]
    assert lines[4].endswith("http://ops:***@api.test/health")
    assert "hunter22" not in text
    assert lines[-1] == f"Log: {paths.log_file} is empty or does not exist yet."


def test_a_monitor_without_pid_file_is_found(tmp_path: Path, proc: FakeProc) -> None:
    proc.add(300, ["python3", str(SCRIPT), "--status"])
    proc.add(301, ["python3", str(SCRIPT)])
    code, text = run(make_paths(tmp_path, http_port=0), proc)
    assert code == EXIT_RUNNING
    assert text.splitlines()[0].startswith("Keep-Alive Monitor: running (PID 301, up ")
    assert text.splitlines()[0].endswith(", no PID file)")


def test_stopped_with_a_stale_pid_file_shows_the_saved_state(tmp_path: Path, proc: FakeProc) -> None:
    proc.add(4242, ["tail", "-f", str(SCRIPT)])
    paths = make_paths(tmp_path, error="FAILURE_THRESHOLD='x' is invalid: expected an integer >= 1")
    paths.pid_file.write_text("4242\n")
    paths.state_dir.mkdir()
    record = {"url": "http://h/health", "status": "up", "consecutive_failures": 0, "last_check": NOW - 30}
    document = {"version": 1, "saved_at": NOW - 30, "targets": {"web": record, "db": {"status": "down"}}}
    (paths.state_dir / "state.json").write_text(json.dumps(document))

    code, text = run(paths, proc)

    assert code == EXIT_STOPPED
    lines = text.splitlines()
    assert lines[:3] == [
        "Keep-Alive Monitor: stopped",
        f"  (stale PID file {paths.pid_file} names PID 4242, which is not this monitor)",
        "  settings: FAILURE_THRESHOLD='x' is invalid: expected an integer >= 1",
    ]
    assert lines[4].startswith(f"Targets (from {paths.state_dir / 'state.json'}, saved ")
    assert lines[4].endswith(" (30 s ago)):")
    assert [line.split()[0] for line in lines[6:8]] == ["db", "web"]  # sorted by name


def test_an_unanswering_endpoint_falls_back_to_the_state_file(tmp_path: Path, proc: FakeProc) -> None:
    proc.add(4242, ["python3", str(SCRIPT)])
    paths = make_paths(tmp_path)
    paths.pid_file.write_text("4242")

    def refused(url: str) -> Any:
        raise ConnectionRefusedError(111, "refused")

    code, text = run(paths, proc, refused)
    assert code == EXIT_RUNNING
    assert (
        f"Targets: no saved state yet ({paths.state_dir / 'state.json'} does not exist); "
        "http://127.0.0.1:5005/api/status did not answer: ConnectionRefusedError"
    ) in text


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        (b"{not json", "not a state file"),
        (b"[1, 2]", "not a state file"),
        (b"[" * 100_000, "not a state file"),
    ],
)
def test_a_broken_state_file_is_one_line(tmp_path: Path, proc: FakeProc, content: bytes, shown: str) -> None:
    paths = make_paths(tmp_path)
    paths.state_dir.mkdir()
    (paths.state_dir / "state.json").write_bytes(content)
    code, text = run(paths, proc)
    assert code == EXIT_STOPPED
    assert f"Targets: cannot read {paths.state_dir / 'state.json'}: {shown}" in text


def test_no_control_character_reaches_the_terminal(tmp_path: Path, proc: FakeProc) -> None:
    paths = make_paths(tmp_path)
    paths.state_dir.mkdir()
    hostile = "a\x1b[2Jb\x9b31mc\x9d0;title\x07d\x85e\x7f"
    record = {"url": f"http://x/{hostile}", "status": hostile, "last_reason": hostile, "last_check": hostile}
    document = {"saved_at": "soon", "targets": {hostile: record}}
    (paths.state_dir / "state.json").write_text(json.dumps(document))
    paths.log_file.write_text(f"first\n{hostile}\n")

    _, text = run(paths, proc)

    assert not any((ch < " " and ch != "\n") or "\x7f" <= ch <= "\x9f" for ch in text)
    assert text.count("a [2Jb 31mc 0;title d e ") == 5  # name, state, reason, URL, log line


def test_printable_blanks_c0_del_and_c1() -> None:
    assert printable("a\x00b\x1bc\x7fd\x80e\x9bf\x9fg\xa0h") == "a b c d e f g\xa0h"


def test_the_log_tail_is_the_last_ten_lines_of_a_large_file(tmp_path: Path) -> None:
    log = tmp_path / "monitor.log"
    log.write_text("".join(f"line {index} " + "x" * 100 + "\n" for index in range(5_000)))
    tail = tail_lines(log)
    assert tail is not None
    assert [line.split()[1] for line in tail] == [str(index) for index in range(4_990, 5_000)]
    assert tail_lines(tmp_path / "missing.log") is None


# ---------------------------------------------------------------------- the command line


def test_status_command_works_with_bad_settings(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MONITOR_ENV_FILE": "",
        "FAILURE_THRESHOLD": "zero",
        "MONITOR_PID_FILE": str(tmp_path / "x.pid"),
        "MONITOR_LOG_FILE": str(tmp_path / "x.log"),
        "MONITOR_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "monitor_server.py"), "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Other tests on this machine may run this repository's monitor (found without a PID
    # file); the exit code must agree with the first line either way.
    first, second = result.stdout.splitlines()[:2]
    assert (result.returncode, first.split("(")[0].strip()) in {
        (3, "Keep-Alive Monitor: stopped"),
        (0, "Keep-Alive Monitor: running"),
    }, result.stdout + result.stderr
    assert second == "  settings: FAILURE_THRESHOLD='zero' is invalid: expected an integer >= 1"
    assert f"Log: {tmp_path / 'x.log'} is empty or does not exist yet." in result.stdout


def test_print_setting_ends_each_value_with_nul(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "MONITOR_ENV_FILE": "", "MONITOR_LOG_FILE": "a\tb.log"}
    command = [sys.executable, str(REPO / "monitor_server.py"), "--print-setting"]
    ok = subprocess.run(
        [*command, "MONITOR_HTTP_HOST", "EMAIL_SENDER"], env=env, capture_output=True, timeout=60
    )
    assert (ok.returncode, ok.stdout) == (0, b"127.0.0.1\0\0")
    bad = subprocess.run([*command, "MONITOR_LOG_FILE"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3
    assert bad.stdout == ""
    assert (
        bad.stderr
        == "error: MONITOR_LOG_FILE='a\\tb.log' is invalid: expected a path without control characters\n"
    )


# ---------------------------------------------------------------------- one rule, two places


@pytest.fixture
def fake_checkout(tmp_path: Path) -> Path:
    """A directory with scripts/common.sh and a monitor_server.py that only waits, so real
    processes can look like the monitor without being it."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "common.sh").write_text((REPO / "scripts" / "common.sh").read_text())
    (root / "monitor_server.py").write_text("import sys\nsys.stdin.read()\n")
    return root


@pytest.mark.parametrize(
    ("extra_before", "extra_after", "python", "expected"),
    [
        ([], [], True, True),
        (["-u"], [], True, True),
        ([], ["--once"], True, False),
        ([], ["--status"], True, False),
        ([], [], False, False),  # `tail -f monitor_server.py` names it without running it
    ],
)
def test_the_shell_and_python_agree_on_what_is_the_monitor(
    fake_checkout: Path, extra_before: list[str], extra_after: list[str], python: bool, expected: bool
) -> None:
    script = fake_checkout / "monitor_server.py"
    argv = (
        [sys.executable, *extra_before, str(script), *extra_after] if python else ["tail", "-f", str(script)]
    )
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as proc:
        try:
            shell = subprocess.run(
                ["bash", "-c", f'. "{fake_checkout}/scripts/common.sh" && is_our_monitor {proc.pid}'],
                capture_output=True,
                timeout=60,
            )
            assert (shell.returncode == 0) is expected, shell.stderr
            assert ProcessTable().is_daemon(proc.pid, script) is expected
        finally:
            proc.kill()
