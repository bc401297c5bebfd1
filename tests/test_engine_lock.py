"""One monitor per state directory: two real monitor processes, the second refused (exit 3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepalive.engine.statelock import StateDirLock
from keepalive.errors import ConfigError
from tests.fakes.targets import TargetServer
from tests.monitor_proc import MonitorProcess, base_env, run_cli


@pytest.fixture
def server() -> Iterator[TargetServer]:
    with TargetServer() as srv:
        yield srv


@pytest.mark.slow
def test_a_second_monitor_on_the_same_state_directory_is_refused_naming_the_first(
    tmp_path: Path, server: TargetServer
) -> None:
    env = base_env(tmp_path, HEALTH_CHECK_URL=server.url("api"), CHECK_INTERVAL_SECONDS="0.5")
    first = MonitorProcess(tmp_path, env).start()
    try:
        assert first.proc is not None
        # Its own events and log files, so nothing of the first one's is touched.
        second_env = {**env, "MONITOR_EVENTS_FILE": str(tmp_path / "second.jsonl")}
        second_env["MONITOR_LOG_FILE"] = str(tmp_path / "second.log")
        second = run_cli([], second_env, timeout=30)
        assert second.returncode == 3
        state_dir = tmp_path / "state"
        assert second.stderr == (
            f"error: MONITOR_STATE_DIR={str(state_dir)!r} is in use by another monitor "
            f"(pid {first.proc.pid}): stop it first, or give this one a directory of its own\n"
        )
        assert (state_dir / "lock").read_text() == f"{first.proc.pid}\n"
        assert len(first.events("monitor_started")) == 1  # the first one goes on undisturbed
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0
    # Released on stop: the next start takes it.
    again = MonitorProcess(tmp_path, {**env, "MONITOR_EVENTS_FILE": str(tmp_path / "again.jsonl")}).start()
    assert again.stop() == 0


@pytest.mark.slow
def test_the_lock_of_a_killed_monitor_does_not_block_a_restart(tmp_path: Path, server: TargetServer) -> None:
    env = base_env(tmp_path, HEALTH_CHECK_URL=server.url("api"), CHECK_INTERVAL_SECONDS="0.5")
    first = MonitorProcess(tmp_path, env).start()
    first.kill()  # SIGKILL: no clean-up ran, the pid is still in the file
    again = MonitorProcess(tmp_path, {**env, "MONITOR_EVENTS_FILE": str(tmp_path / "again.jsonl")}).start()
    try:
        assert again.proc is not None
        assert (tmp_path / "state" / "lock").read_text() == f"{again.proc.pid}\n"
    finally:
        assert again.stop() == 0


def test_the_lock_is_one_per_directory_and_free_again_once_released(tmp_path: Path) -> None:
    first, second = StateDirLock(tmp_path / "state"), StateDirLock(tmp_path / "state")
    first.acquire()
    try:
        with pytest.raises(ConfigError, match=rf"is in use by another monitor \(pid {os.getpid()}\)"):
            second.acquire()
    finally:
        first.release()
    second.acquire()  # released: free for the next one
    assert (tmp_path / "state" / "lock").read_text() == f"{os.getpid()}\n"
    second.release()
    assert (tmp_path / "state" / "lock").read_text() == ""


def test_a_state_directory_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as caught:
        StateDirLock(tmp_path / "file" / "state").acquire()
    assert (
        str(caught.value)
        == f"MONITOR_STATE_DIR={str(tmp_path / 'file' / 'state')!r} cannot be used: Not a directory"
    )
