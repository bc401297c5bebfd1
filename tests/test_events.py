"""The events file: JSON lines, scrubbed, rotated by size, reopened after logrotate renames it."""

from __future__ import annotations

import json
from pathlib import Path

from keepalive.events import EventLog
from keepalive.scrub import register_secret


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def fixed_clock() -> float:
    return 1_763_000_000.0


def test_each_event_is_one_scrubbed_json_line(tmp_path: Path) -> None:
    register_secret("ev3nt-secret")
    path = tmp_path / "logs" / "events.jsonl"
    events = EventLog(path, clock=fixed_clock)
    events.emit("check_failed", target="api", reason="login ev3nt-secret refused")
    events.close()
    assert lines(path) == [
        {
            "ts": "2025-11-13T02:13:20.000Z",
            "event": "check_failed",
            "target": "api",
            "reason": "login *** refused",
        }
    ]


def test_the_file_is_rotated_before_it_passes_its_size(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventLog(path, clock=fixed_clock, max_bytes=1000, backups=2)
    for index in range(40):  # ~80 bytes each: 3,200 bytes, more than three files' worth
        events.emit("check_failed", target=f"t{index:02d}")
    events.close()

    rotated = [path.with_name("events.jsonl.1"), path.with_name("events.jsonl.2")]
    assert all(p.stat().st_size <= 1000 for p in [path, *rotated])
    assert not path.with_name("events.jsonl.3").exists()
    # The newest lines are in the file, the ones before them in .1, then .2, none doubled.
    kept = [e["target"] for p in [*reversed(rotated), path] for e in lines(p)]
    assert kept == [f"t{index:02d}" for index in range(40 - len(kept), 40)]
    assert lines(path)[-1]["target"] == "t39"


def test_zero_max_bytes_never_rotates(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventLog(path, clock=fixed_clock, max_bytes=0)
    for index in range(100):
        events.emit("check_failed", target=f"t{index}")
    events.close()
    assert len(lines(path)) == 100
    assert not path.with_name("events.jsonl.1").exists()


def test_reopen_after_an_external_rename_writes_to_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventLog(path, clock=fixed_clock)
    events.emit("before")
    path.rename(tmp_path / "events.jsonl.logrotate")  # what logrotate does before its SIGHUP
    events.reopen()
    events.emit("after")
    events.close()
    assert [e["event"] for e in lines(tmp_path / "events.jsonl.logrotate")] == ["before"]
    assert [e["event"] for e in lines(path)] == ["after"]


def test_a_failed_reopen_is_logged_and_the_next_write_tries_again(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    path = directory / "events.jsonl"
    events = EventLog(path, clock=fixed_clock)
    path.unlink()
    directory.rmdir()
    events.reopen()  # the directory is gone: no exception, one error line
    events.emit("lost")
    directory.mkdir()
    events.emit("kept")
    events.close()
    assert [e["event"] for e in lines(path)] == ["kept"]
    assert [e["event"] for e in events.recent] == ["lost", "kept"]
