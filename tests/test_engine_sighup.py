"""SIGHUP on a real monitor process: settings re-read, log and events files reopened (logrotate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.targets import TargetServer
from tests.monitor_proc import MonitorProcess, base_env, wait_until

pytestmark = pytest.mark.slow


def test_sighup_reopens_the_events_and_log_files_after_logrotate_moved_them(tmp_path: Path) -> None:
    with TargetServer() as server:
        targets = tmp_path / "targets.toml"
        targets.write_text(f'[[targets]]\nname = "api"\nurl = "{server.url("api")}"\ninterval = 0.5\n')
        env = base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets))
        mon = MonitorProcess(tmp_path, env).start()
        try:
            events, logfile = tmp_path / "events.jsonl", tmp_path / "monitor.log"
            wait_until(lambda: "monitor started" in logfile.read_text(), what="the start in the log")
            events.rename(tmp_path / "events.jsonl.1")
            logfile.rename(tmp_path / "monitor.log.1")
            targets.write_text(
                targets.read_text()
                + f'[[targets]]\nname = "db"\nurl = "{server.url("db")}"\ninterval = 0.5\n'
            )
            mon.signal(1)  # SIGHUP
            (reloaded,) = mon.wait_event("config_reloaded")  # read from the new events.jsonl
            assert (reloaded["targets"], reloaded["added"], reloaded["changed"], reloaded["removed"]) == (
                2,
                1,
                0,
                0,
            )
            wait_until(
                lambda: logfile.exists() and "configuration reloaded" in logfile.read_text(), what="new log"
            )
            assert "config_reloaded" not in (tmp_path / "events.jsonl.1").read_text()
            assert "configuration reloaded" not in (tmp_path / "monitor.log.1").read_text()
        finally:
            assert mon.stop() == 0


def test_a_bad_settings_file_on_sighup_keeps_the_running_configuration(tmp_path: Path) -> None:
    with TargetServer() as server:
        targets = tmp_path / "targets.toml"
        targets.write_text(f'[[targets]]\nname = "api"\nurl = "{server.url("api")}"\ninterval = 0.5\n')
        mon = MonitorProcess(tmp_path, base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets))).start()
        try:
            targets.write_text("[[targets]\nthis is not toml")
            mon.signal(1)
            (failed,) = mon.wait_event("config_reload_failed")
            assert failed["error"].startswith("MONITOR_TARGETS_FILE")
            assert mon.events("config_reloaded") == []
            assert mon.proc is not None and mon.proc.poll() is None
        finally:
            assert mon.stop() == 0
