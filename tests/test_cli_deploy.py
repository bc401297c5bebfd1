"""deploy/: the systemd unit has what the README promises, and systemd itself accepts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "deploy" / "keepalive-monitor.service"
INSTALL = "/opt/keepalive-monitor"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file, each key with every value it was given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting before any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


def test_it_runs_the_venv_python_and_reloads_with_sighup(service: dict[str, list[str]]) -> None:
    assert service["Type"] == ["simple"]
    assert service["ExecStart"] == [f"{INSTALL}/.venv/bin/python {INSTALL}/monitor_server.py"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_invalid_settings_are_not_restarted_in_a_loop(service: dict[str, list[str]]) -> None:
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["3"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ],
)
def test_it_is_hardened(service: dict[str, list[str]], key: str, value: str) -> None:
    assert service[key] == [value]


def test_it_may_write_only_where_its_settings_point(service: dict[str, list[str]]) -> None:
    writable = service["ReadWritePaths"][0].split()
    environment = dict(item.split("=", 1) for item in service["Environment"])
    assert writable == ["/var/lib/keepalive-monitor", "/var/log/keepalive-monitor"]
    assert environment["MONITOR_STATE_DIR"] == "/var/lib/keepalive-monitor"
    for name in ("MONITOR_LOG_FILE", "MONITOR_EVENTS_FILE"):
        assert Path(environment[name]).parent == Path("/var/log/keepalive-monitor"), name
    assert environment["MONITOR_ENV_FILE"] == "/etc/keepalive-monitor/monitor.env"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point the copy at this checkout and this Python.
    text = UNIT.read_text().replace(f"{INSTALL}/.venv/bin/python", sys.executable).replace(INSTALL, str(REPO))
    unit = tmp_path / "keepalive-monitor.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if "keepalive-monitor.service" in line]
    assert problems == []
