"""Log-file targets (SPEC section 14) on real files: appends, both kinds of rotation,
truncation, a missing file, a restart, and a 100 MiB burst."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keepalive.errors import ConfigError
from keepalive.probe.checker import Checker, CheckResult
from keepalive.scrub import register_secret
from keepalive.targets import Target, load_targets_file

BASE = {"interval": 60.0, "failure_threshold": 2, "success_threshold": 1, "timeout": 5.0}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Session:
    """One checker on its own loop, checking one log target on demand."""

    def __init__(self, state_dir: Path, clock: Clock) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = clock
        self.checker = self.loop.run_until_complete(self._make(state_dir))

    async def _make(self, state_dir: Path) -> Checker:
        return Checker(state_dir=state_dir, clock=self.clock)

    def check(self, target: Target) -> CheckResult:
        return self.loop.run_until_complete(self.checker.check(target))

    def close(self) -> None:
        self.loop.run_until_complete(self.checker.close())
        self.loop.close()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def session(tmp_path: Path, clock: Clock) -> Iterator[Session]:
    s = Session(tmp_path / "state", clock)
    yield s
    s.close()


def log_target(path: Path, **options: Any) -> Target:
    options.setdefault("patterns", ("Traceback",))
    return Target(
        name="agent", url=path.absolute().as_uri(), interval=60.0, failure_threshold=1, success_threshold=1,
        timeout=30.0, log=str(path), **options,
    )  # fmt: skip


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def test_lines_written_after_the_first_look_are_matched_and_the_last_one_is_the_reason(
    tmp_path: Path, session: Session
) -> None:
    log = tmp_path / "app.log"
    append(log, "Traceback (old news, before the monitor started)")
    target = log_target(log)
    first = session.check(target)
    assert (first.ok, first.reason) == (True, None)
    append(
        log,
        "INFO fine",
        "Traceback (most recent call last):",
        "  File x",
        "Traceback again",
        "Traceback: third",
    )
    result = session.check(target)
    assert (result.ok, result.reason) == (False, "3 lines matched 'Traceback' in 5m: Traceback: third")
    assert result.detail is not None
    assert (result.detail.log_file, result.detail.last_match) == (str(log), "Traceback: third")


def test_matches_age_out_of_the_window_and_max_matches_allows_some(
    tmp_path: Path, session: Session, clock: Clock
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log, max_matches=2, window=300.0)
    session.check(target)
    append(log, "Traceback 1", "Traceback 2")
    assert session.check(target).reason is None  # 2 lines: not more than max_matches
    clock.now += 100
    append(log, "Traceback 3")
    assert session.check(target).reason == "3 lines matched 'Traceback' in 5m: Traceback 3"
    clock.now += 250  # the first two are now older than the window
    assert session.check(target).reason is None


def test_every_pattern_that_matched_is_named(tmp_path: Path, session: Session) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log, patterns=("ERROR", "Traceback"))
    session.check(target)
    append(log, "ERROR disk full", "Traceback (most recent call last):")
    assert session.check(target).reason == (
        "2 lines matched 'ERROR', 'Traceback' in 5m: Traceback (most recent call last):"
    )


def test_a_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one_from_its_start(
    tmp_path: Path, session: Session
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log)
    session.check(target)
    append(log, "Traceback written just before the rotation")
    log.rename(tmp_path / "app.log.1")
    append(log, "Traceback in the new file")
    result = session.check(target)
    assert result.reason == "2 lines matched 'Traceback' in 5m: Traceback in the new file"


def test_a_copy_truncate_rotation_reads_the_file_from_its_start(tmp_path: Path, session: Session) -> None:
    log = tmp_path / "app.log"
    append(log, "INFO " + "x" * 500)
    target = log_target(log)
    session.check(target)
    with log.open("r+") as handle:
        handle.truncate(0)
    append(log, "Traceback after truncation")
    result = session.check(target)
    assert result.reason == "1 line matched 'Traceback' in 5m: Traceback after truncation"


def test_a_missing_file_fails_and_a_file_that_appears_is_read_from_its_start(
    tmp_path: Path, session: Session
) -> None:
    log = tmp_path / "app.log"
    target = log_target(log)
    assert session.check(target).reason == "log file missing"
    append(log, "Traceback right after creation")
    assert session.check(target).reason == "1 line matched 'Traceback' in 5m: Traceback right after creation"


def test_the_position_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "app.log"
    append(log, "Traceback before the first start")
    target = log_target(log)
    first = Session(tmp_path / "state", clock)
    try:
        assert first.check(target).reason is None
        append(log, "Traceback seen by the first run")
        assert (
            first.check(target).reason == "1 line matched 'Traceback' in 5m: Traceback seen by the first run"
        )
    finally:
        first.close()
    append(log, "Traceback written while the monitor was stopped")
    second = Session(tmp_path / "state", clock)
    try:
        # Only what was appended while stopped: neither old line is read again.
        assert second.check(target).reason == (
            "1 line matched 'Traceback' in 5m: Traceback written while the monitor was stopped"
        )
    finally:
        second.close()


def test_a_file_rotated_while_the_monitor_was_stopped_is_read_from_its_start(
    tmp_path: Path, clock: Clock
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log)
    first = Session(tmp_path / "state", clock)
    try:
        first.check(target)
    finally:
        first.close()
    log.rename(tmp_path / "app.log.1")
    append(log, "Traceback in the file that replaced it")
    second = Session(tmp_path / "state", clock)
    try:
        assert (
            second.check(target).reason
            == "1 line matched 'Traceback' in 5m: Traceback in the file that replaced it"
        )
    finally:
        second.close()


def test_a_100_mib_burst_reads_its_newest_16_mib_and_says_what_it_skipped(
    tmp_path: Path, session: Session
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log)
    session.check(target)
    line = b"INFO " + b"y" * 1018 + b"\n"  # 1 KiB
    block = line * 1024  # 1 MiB
    with log.open("ab") as handle:
        handle.write(b"Traceback in the skipped part\n")
        for _ in range(100):
            handle.write(block)
        handle.write(b"Traceback at the end of the burst\n")
    result = session.check(target)
    assert result.reason == "1 line matched 'Traceback' in 5m: Traceback at the end of the burst"
    assert result.detail is not None
    assert result.detail.log_note == "skipped 84.0 MiB: more than 16.0 MiB since the last check"
    append(log, "INFO quiet again")
    after = session.check(target)
    assert after.detail is not None and after.detail.log_note is None


def test_a_line_is_shown_scrubbed_printable_and_at_most_200_characters(
    tmp_path: Path, session: Session
) -> None:
    secret = "hunter2-very-secret-token"
    register_secret(secret)
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log)
    session.check(target)
    append(log, f"Traceback token={secret} \x1b[31mred\x1b[0m " + "z" * 300)
    reason = session.check(target).reason
    assert reason is not None
    shown = reason.split(": ", 1)[1]
    assert secret not in shown and "\x1b" not in shown
    assert shown.startswith("Traceback token=")
    assert len(shown) == 200 and shown.endswith("…")


def test_a_partial_last_line_waits_for_its_end(tmp_path: Path, session: Session) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log)
    session.check(target)
    with log.open("a") as handle:
        handle.write("Trace")
    assert session.check(target).reason is None
    with log.open("a") as handle:
        handle.write("back split across two writes\n")
    assert (
        session.check(target).reason == "1 line matched 'Traceback' in 5m: Traceback split across two writes"
    )


def write_targets(tmp_path: Path, body: str) -> Callable[[], Any]:
    path = tmp_path / "targets.toml"
    path.write_text(body)
    return lambda: load_targets_file(path, BASE)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('log = "/var/log/a.log"\npatterns = ["(unclosed"]\n',
         "patterns: '(unclosed' is not a valid regular expression: missing ), unterminated subpattern at position 0"),
        ('log = "/var/log/a.log"\n', 'patterns is missing: a log target needs patterns, e.g. ["ERROR", "Traceback"]'),
        ('log = "/var/log/a.log"\nurl = "http://x/health"\npatterns = ["E"]\n',
         "url and log name different kinds of check: give one (url for http(s):// or tcp://, "
         "push_token for a push target, log for a log file)"),
        ('log = "/var/log/a.log"\npatterns = ["E"]\nmax_matches = -1\n',
         "max_matches=-1 is invalid: expected an integer from 0 to 1000000"),
        ('log = "/var/log/a.log"\npatterns = ["E"]\nwindow = 0\n', "window=0 is invalid: expected a number of seconds >= 1"),
        ('url = "http://x/health"\npatterns = ["E"]\n', "patterns does not apply to a http target"),
    ],
)  # fmt: skip
def test_a_bad_log_target_is_a_config_error_naming_it(tmp_path: Path, body: str, problem: str) -> None:
    load = write_targets(tmp_path, '[[targets]]\nname = "agent"\n' + body)
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value) == f"MONITOR_TARGETS_FILE {tmp_path / 'targets.toml'}: target 'agent': {problem}"


def test_a_log_target_has_a_file_url_and_its_kind(tmp_path: Path) -> None:
    load = write_targets(
        tmp_path, '[[targets]]\nname = "agent"\nlog = "/var/log/agent.log"\npatterns = "ERROR"\n'
    )
    (target,) = load()
    assert (target.kind, target.url, target.patterns, target.window, target.max_matches) == (
        "log", "file:///var/log/agent.log", ("ERROR",), 300.0, 0,
    )  # fmt: skip


def test_reading_happens_off_the_event_loop_thread(tmp_path: Path, session: Session) -> None:
    log = tmp_path / "app.log"
    log.touch()
    target = log_target(log)
    session.check(target)
    loop_thread = session.loop.run_until_complete(_thread_id())
    readers = {t for t in _reader_threads()}
    assert readers and loop_thread not in readers


async def _thread_id() -> int:
    import threading

    return threading.get_ident()


def _reader_threads() -> set[int]:
    import threading

    return {t.ident or 0 for t in threading.enumerate() if t.name.startswith("logwatch")}


def test_no_position_file_is_kept_without_a_state_directory(tmp_path: Path, clock: Clock) -> None:
    async def run() -> CheckResult:
        checker = Checker(clock=clock)
        try:
            return await checker.check(log_target(tmp_path / "app.log"))
        finally:
            await checker.close()

    assert asyncio.run(run()).reason == "log file missing"
    assert sorted(os.listdir(tmp_path)) == []


def test_a_target_no_longer_checked_has_its_file_closed_and_resumes_at_its_position(
    tmp_path: Path, session: Session, clock: Clock
) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    first.touch()
    second.touch()
    target = log_target(first)
    other = Target(**{**{f: getattr(target, f) for f in ("interval", "failure_threshold", "success_threshold",
                                                         "timeout", "patterns")},
                      "name": "other", "url": second.as_uri(), "log": str(second)})  # fmt: skip
    session.check(target)
    assert str(first) in _open_files()  # kept open between checks, as tail -F does
    append(first, "Traceback while nobody looked")
    clock.now += 3 * 60 + 61  # three intervals and the prune period without a check of it
    session.check(other)  # prunes the idle watch: its file is closed
    assert str(first) not in _open_files()
    assert session.check(target).reason == "1 line matched 'Traceback' in 5m: Traceback while nobody looked"


def _open_files() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if _is_link(fd)}


def _is_link(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True
