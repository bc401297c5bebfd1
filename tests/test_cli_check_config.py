"""--check-config and --once show URLs without passwords and nothing a terminal would obey."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "MONITOR_ENV_FILE": "",
        "MONITOR_STATE_DIR": str(tmp_path / "state"),
        "MONITOR_EVENTS_FILE": str(tmp_path / "events.jsonl"),
        "MONITOR_HTTP_PORT": "0",
    }
    return subprocess.run(
        [sys.executable, str(REPO / "monitor_server.py"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def no_controls(text: str) -> bool:
    return not any((ch < " " and ch != "\n") or "\x7f" <= ch <= "\x9f" for ch in text)


def test_check_config_masks_every_url_password(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text('[[targets]]\nname = "db"\nurl = "http://ops:t4rget-pw@db.test/health"\n')
    result = cli(
        tmp_path,
        "--check-config",
        MONITOR_TARGETS_FILE=str(targets),
        HEALTH_CHECK_URL="http://ops:h3alth-pw@h.test/health",
        HEARTBEAT_URL="https://hb:b3at-pw@hc.test/ping",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "t4rget-pw" not in result.stdout
        and "h3alth-pw" not in result.stdout
        and "b3at-pw" not in result.stdout
    )
    assert "  db  http://ops:***@db.test/health  every " in result.stdout
    assert "http://ops:***@h.test/health" in result.stdout
    assert "https://hb:***@hc.test/ping" in result.stdout


def test_check_config_prints_no_control_characters(tmp_path: Path) -> None:
    env_file = tmp_path / "hostile.env"
    env_file.write_text('EMAIL_SENDER="\x1b]0;x\x07"\nTELEGRAM_CHAT_ID=YOUR_TELEGRAM_CHAT_ID\n')
    targets = tmp_path / "targets.toml"
    targets.write_text(
        '[[targets]]\nname = "a\\u009b31mb"\nurl = "http://h.test/health"\nexpect_status = "o\\u001b[2Jk"\n'
    )
    result = cli(
        tmp_path, "--check-config", MONITOR_ENV_FILE=str(env_file), MONITOR_TARGETS_FILE=str(targets)
    )
    # A control character in a setting is refused, in one escaped line.
    assert result.returncode == 3
    assert result.stderr == (
        "error: EMAIL_SENDER='\\x1b]0;x\\x07' is invalid: expected a value without control characters\n"
    )
    result = cli(tmp_path, "--check-config", MONITOR_HTTP_HOST="\u009b6n\x1b[0m")
    assert result.returncode == 3
    assert result.stderr == (
        "error: MONITOR_HTTP_HOST='\\x9b6n\\x1b[0m' is invalid: expected a value without control characters\n"
    )

    # The targets file's names and values are shown, made harmless.
    result = cli(tmp_path, "--check-config", MONITOR_TARGETS_FILE=str(targets))
    assert result.returncode == 0, result.stderr
    assert no_controls(result.stdout)
    assert "  a 31mb  http://h.test/health" in result.stdout
    assert "expect o [2Jk" in result.stdout


def test_once_shows_the_url_without_its_password(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "--once", HEALTH_CHECK_URL="http://ops:0nce-secret@127.0.0.1:9/health", REQUEST_TIMEOUT="2"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "0nce-secret" not in result.stdout + result.stderr
    assert "http://ops:***@127.0.0.1:9/health" in result.stdout
    # The target's name is its host and port, never its user-info.
    assert result.stdout.splitlines()[1].startswith("127.0.0.1:9  FAIL")
