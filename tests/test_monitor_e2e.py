"""The monitor run as a subprocess against real loopback targets: outages, recoveries, restarts,
signals and the command line's exit codes."""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.targets import TargetServer, closed_port
from tests.monitor_proc import MonitorProcess, base_env, run_cli, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[TargetServer]:
    with TargetServer() as srv:
        yield srv


def fast_env(tmp_path: Path, url: str, **overrides: str) -> dict[str, str]:
    settings = {
        "HEALTH_CHECK_URL": url,
        "CHECK_INTERVAL_SECONDS": "0.2",
        "REQUEST_TIMEOUT": "2",
        "FAILURE_THRESHOLD": "2",
    }
    return base_env(tmp_path, **{**settings, **overrides})


def test_an_outage_and_its_recovery_reach_the_events_file(tmp_path: Path, server: TargetServer) -> None:
    mon = MonitorProcess(tmp_path, fast_env(tmp_path, server.url("game"), REPEAT_ALERTS="false")).start()
    try:
        server.wait_for_requests("game", 2)
        assert mon.events("target_down") == []
        server.set_mode("game", "http503")
        (down,) = mon.wait_event("target_down")
        assert down["reason"] == "HTTP 503"
        assert down["failed_checks"] == 2
        failed = mon.events("target_failed")
        assert [f["consecutive_failures"] for f in failed[:2]] == [1, 2]
        assert failed[0]["reason"] == "HTTP 503"
        server.set_mode("game", "ok")
        (recovered,) = mon.wait_event("target_recovered")
        assert recovered["downtime_seconds"] > 0
        assert recovered["since"] == down["since"]
        # The alert is queued (and then logged) just after the state change's own event.
        mon.wait_event("alert_queued", kind="RECOVERED")
        assert [q["kind"] for q in mon.events("alert_queued")] == ["DOWN", "RECOVERED"]
        wait_until(lambda: "ALERT RECOVERED" in mon.log(), what="the log channel's RECOVERED line")
        assert "ALERT DOWN" in mon.log()
    finally:
        assert mon.stop() == 0
    assert mon.events("monitor_stopped")
    # Passing checks are not events: only start, failures, state changes, alerts and stop.
    names = {e["event"] for e in mon.events()}
    assert names <= {
        "monitor_started",
        "target_failed",
        "target_state_changed",
        "target_down",
        "target_recovered",
        "alert_queued",
        "alert_sent",
        "monitor_stopped",
    }


def test_a_long_outage_is_re_announced_every_threshold_failures(tmp_path: Path, server: TargetServer) -> None:
    server.set_mode("api", "degraded")
    mon = MonitorProcess(tmp_path, fast_env(tmp_path, server.url("api"))).start()
    try:
        downs = mon.wait_event("target_down", count=2)
        assert [d["repeat"] for d in downs[:2]] == [0, 1]
        assert [d["failed_checks"] for d in downs[:2]] == [2, 4]
        assert downs[0]["reason"] == 'status is "degraded"'
        assert len({d["alert_id"] for d in downs}) == len(downs)
    finally:
        mon.stop()


def test_sigterm_during_a_hanging_check_stops_promptly_with_state_saved(
    tmp_path: Path, server: TargetServer
) -> None:
    server.set_mode("stuck", "hang")
    timeout = 10.0
    mon = MonitorProcess(
        tmp_path, fast_env(tmp_path, server.url("stuck"), REQUEST_TIMEOUT=str(timeout))
    ).start()
    assert server.wait_for_requests("stuck", 1)
    # The check now hangs for up to REQUEST_TIMEOUT; SPEC: stop within REQUEST_TIMEOUT + 2 s.
    assert mon.stop(timeout=timeout + 2) == 0
    assert mon.events("monitor_stopped")
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert server.url("stuck") in {t["url"] for t in saved["targets"].values()}


def test_a_restart_mid_outage_neither_re_announces_nor_forgets_the_recovery(
    tmp_path: Path, server: TargetServer
) -> None:
    env = fast_env(tmp_path, server.url("db"), REPEAT_ALERTS="false")
    server.set_mode("db", "http500")
    first = MonitorProcess(tmp_path, env).start()
    try:
        (down,) = first.wait_event("target_down")
    finally:
        assert first.stop() == 0
    seen = len(first.events("target_failed"))

    second = MonitorProcess(tmp_path, env).start()
    try:
        # Several more failed checks after the restart: with repeat off, no second DOWN.
        second.wait_event("target_failed", count=seen + 4)
        assert len(second.events("target_down")) == 1
        server.set_mode("db", "ok")
        (recovered,) = second.wait_event("target_recovered")
        assert recovered["since"] == down["since"]
        assert recovered["failed_checks"] >= seen + 4
    finally:
        second.stop()


def test_a_corrupt_state_file_is_set_aside_not_fatal(tmp_path: Path, server: TargetServer) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text("{not json")
    mon = MonitorProcess(tmp_path, fast_env(tmp_path, server.url("x"))).start()
    try:
        (event,) = mon.wait_event("state_file_discarded")
        assert "corrupt" in event["reason"]
        assert list(state_dir.glob("state.json.corrupt-*"))
    finally:
        assert mon.stop() == 0


def test_valid_json_that_poisons_a_record_costs_that_record_only(
    tmp_path: Path, server: TargetServer
) -> None:
    """Issue 9 defect 7: ``"failures": Infinity`` was a traceback and exit 1 at every start."""
    targets = tmp_path / "targets.toml"
    write_targets(targets, server, ["db", "api"])
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    down = '"status": "down", "outage_failures": 4, "successes": 0, "since": 1700000000.0, "alerts_raised": 1'
    (state_dir / "state.json").write_text(
        '{"version": 1, "targets": {'
        f'"db": {{"url": "{server.url("db")}", "failures": Infinity, {down}}}, '
        f'"api": {{"url": "{server.url("api")}", "failures": 0, {down}}}'
        "}}"
    )
    mon = MonitorProcess(tmp_path, base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets))).start()
    try:
        (event,) = mon.wait_event("state_file_discarded")
        assert "'db' (failures=inf is not a whole number" in event["reason"]
        assert "outage memory is lost" in event["reason"]
        # api's outage was remembered: it passes now, so its RECOVERED is announced.
        (recovered,) = mon.wait_event("target_recovered", target="api")
        assert recovered["since"] == "2023-11-14T22:13:20.000Z"
        assert mon.events("target_recovered", target="db") == []
        assert "Traceback" not in mon.log()
        assert len(list(state_dir.glob("state.json.rejected-*"))) == 1
    finally:
        assert mon.stop() == 0


def write_targets(path: Path, server: TargetServer, names: list[str], extra: str = "") -> None:
    body = "[defaults]\ninterval = 0.2\ntimeout = 2\nfailure_threshold = 2\n"
    for name in names:
        body += f'\n[[targets]]\nname = "{name}"\nurl = "{server.url(name)}"\n'
    path.write_text(body + extra)


def test_sighup_reloads_the_targets_file_and_keeps_running_on_a_bad_one(
    tmp_path: Path, server: TargetServer
) -> None:
    targets = tmp_path / "targets.toml"
    write_targets(targets, server, ["one"])
    mon = MonitorProcess(tmp_path, base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets))).start()
    try:
        write_targets(targets, server, ["one", "two"])
        mon.signal(signal.SIGHUP)
        (reloaded,) = mon.wait_event("config_reloaded")
        assert (reloaded["targets"], reloaded["added"], reloaded["removed"]) == (2, 1, 0)
        assert server.wait_for_requests("two", 1)

        targets.write_text('[[targets]]\nname = "one"\n')  # no url: invalid
        mon.signal(signal.SIGHUP)
        (failed,) = mon.wait_event("config_reload_failed")
        assert "target 'one': url is missing" in failed["error"]
        before = server.count("two")
        assert server.wait_for_requests("two", before + 2)  # still checking the old set
    finally:
        assert mon.stop() == 0


def test_once_prints_a_table_and_exits_2_when_a_target_fails(tmp_path: Path, server: TargetServer) -> None:
    targets = tmp_path / "targets.toml"
    server.set_mode("bad", "bad_json")
    write_targets(targets, server, ["good", "bad"])
    result = run_cli(["--once"], base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets)))
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "RESULT", "LATENCY", "REASON", "URL"]
    assert any(line.startswith("good") and " PASS " in line for line in lines)
    assert any(line.startswith("bad") and " FAIL " in line and "invalid JSON" in line for line in lines)
    assert "1 passed, 1 failed" in result.stdout

    server.set_mode("bad", "ok")
    assert run_cli(["--once"], base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets))).returncode == 0


@pytest.mark.parametrize("args", [["--once"], ["--check-config"]])
def test_a_target_name_cannot_write_control_characters_to_the_terminal(
    tmp_path: Path, server: TargetServer, args: list[str]
) -> None:
    targets = tmp_path / "targets.toml"
    # TOML's \u001b is ESC: a name that would recolour (or clear) the operator's terminal. (A
    # name may not start or end with white space, so the carriage return is inside it.)
    targets.write_text(f'[[targets]]\nname = "red\\u001b[31mna\\rme"\nurl = "{server.url("tty")}"\n')
    result = run_cli(args, base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets)))
    assert result.returncode == 0, result.stderr
    assert "red [31mna me" in result.stdout
    assert "\x1b" not in result.stdout and "\r" not in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FAILURE_THRESHOLD": "zero"},
            "error: FAILURE_THRESHOLD='zero' is invalid: expected an integer >= 1",
        ),
        (
            {"SMTP_SECURITY": "tls"},
            "error: SMTP_SECURITY='tls' is invalid: expected one of starttls, ssl, none",
        ),
        (
            {"MONITOR_TARGETS_FILE": "/nonexistent/targets.toml"},
            "error: MONITOR_TARGETS_FILE='/nonexistent/targets.toml' is invalid: the file does not exist",
        ),
    ],
)
@pytest.mark.parametrize("args", [[], ["--check-config"], ["--once"], ["--test-alert"]])
def test_a_bad_setting_is_one_line_and_exit_3_in_every_mode(
    tmp_path: Path, env: dict[str, str], message: str, args: list[str]
) -> None:
    result = run_cli(args, base_env(tmp_path, **env))
    assert result.returncode == 3
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_check_config_prints_settings_with_secrets_masked(tmp_path: Path) -> None:
    token = "987654321:AAFakeTokenValueForTheCheckConfigTest_xyz"
    result = run_cli(
        ["--check-config"],
        base_env(tmp_path, TELEGRAM_BOT_TOKEN=token, TELEGRAM_CHAT_ID="42", SMTP_PASSWORD="s3cret-pass"),
    )
    assert result.returncode == 0
    assert token not in result.stdout + result.stderr
    assert "s3cret-pass" not in result.stdout + result.stderr
    assert "TELEGRAM_BOT_TOKEN" in result.stdout and "*** (set)" in result.stdout
    # The channel column is as wide as the longest channel name.
    assert re.search(r"^  telegram +on ", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^  email +off +SMTP_SERVER is not set$", result.stdout, re.MULTILINE), result.stdout


def test_a_busy_http_port_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = base_env(
            tmp_path, HEALTH_CHECK_URL=f"http://127.0.0.1:{closed_port()}/health", MONITOR_HTTP_PORT=str(port)
        )
        result = run_cli([], env)
    assert result.returncode == 3
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "MONITOR_HTTP_PORT" in line and str(port) in line
    assert "Traceback" not in result.stderr


def test_sigint_also_stops_cleanly(tmp_path: Path, server: TargetServer) -> None:
    mon = MonitorProcess(tmp_path, fast_env(tmp_path, server.url("i"))).start()
    assert server.wait_for_requests("i", 1)
    mon.signal(signal.SIGINT)
    assert mon.stop() == 0
    wait_until(lambda: mon.events("monitor_stopped"), what="monitor_stopped")


@pytest.mark.parametrize(
    ("setting", "message"),
    [("MONITOR_STATE_DIR", "cannot be used"), ("MONITOR_EVENTS_FILE", "cannot be written")],
)
def test_an_unusable_state_dir_or_events_file_is_one_line_and_exit_3(
    tmp_path: Path, setting: str, message: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = base_env(
        tmp_path,
        HEALTH_CHECK_URL=f"http://127.0.0.1:{closed_port()}/health",
        **{setting: str(blocker / "sub" / "x")},
    )
    result = run_cli([], env)
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {setting}=") and message in result.stderr
    assert "Traceback" not in result.stderr
