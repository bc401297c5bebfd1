"""Maintenance windows: zones, days, across midnight, and the two daylight-saving nights of
Europe/Madrid, stepped through with an injected clock (no sleeping, no machine zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keepalive.config import load_settings
from keepalive.errors import ConfigError
from keepalive.policy.maintenance import Calendar, Window, read_window

SOURCE = "MONITOR_TARGETS_FILE t.toml"


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def show(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%MZ")


def window(**raw: object) -> Window:
    return read_window({"name": "nightly", "duration": "45m", **raw}, 1, SOURCE)


def open_spans(win: Window, start: str, end: str, step: float = 60.0) -> list[tuple[str, str]]:
    """Each stretch of [start, end) during which the window is open, stepping the clock by ``step``."""
    spans: list[tuple[str, str]] = []
    now, stop = utc(start), utc(end)
    opened: float | None = None
    while now < stop:
        is_open = win.open_until(now) is not None
        if is_open and opened is None:
            opened = now
        elif not is_open and opened is not None:
            spans.append((show(opened), show(now)))
            opened = None
        now += step
    if opened is not None:
        spans.append((show(opened), "still open"))
    return spans


def test_a_winter_night_in_madrid_is_one_hour_ahead_of_utc() -> None:
    win = window(start="02:00", timezone="Europe/Madrid")
    assert open_spans(win, "2026-01-13T22:00", "2026-01-14T04:00") == [
        ("2026-01-14T01:00Z", "2026-01-14T01:45Z")
    ]


def test_spring_forward_a_start_in_the_skipped_hour_still_opens_once_for_its_whole_duration() -> None:
    # 2026-03-29 in Madrid: 02:00 CET jumps to 03:00 CEST; 02:30 never shows on a clock.
    win = window(start="02:30", timezone="Europe/Madrid")
    assert open_spans(win, "2026-03-28T22:00", "2026-03-29T06:00") == [
        ("2026-03-29T01:30Z", "2026-03-29T02:15Z")
    ]
    until = win.open_until(utc("2026-03-29T01:30"))
    assert until is not None and until - utc("2026-03-29T01:30") == 45 * 60


def test_spring_forward_a_window_before_the_change_keeps_its_wall_clock_time() -> None:
    win = window(start="01:00", timezone="Europe/Madrid", duration="2h")
    # 01:00 CET = 00:00Z; two hours of real time later it is 02:00Z (04:00 CEST on the clock).
    assert open_spans(win, "2026-03-28T22:00", "2026-03-29T06:00") == [
        ("2026-03-29T00:00Z", "2026-03-29T02:00Z")
    ]


def test_fall_back_a_start_in_the_repeated_hour_opens_once_not_twice() -> None:
    # 2026-10-25 in Madrid: 03:00 CEST falls back to 02:00 CET; 02:30 shows twice on a clock.
    win = window(start="02:30", timezone="Europe/Madrid")
    assert open_spans(win, "2026-10-24T20:00", "2026-10-25T06:00") == [
        ("2026-10-25T00:30Z", "2026-10-25T01:15Z")
    ]


def test_fall_back_the_next_day_runs_on_winter_time() -> None:
    win = window(start="02:30", timezone="Europe/Madrid")
    assert open_spans(win, "2026-10-25T20:00", "2026-10-26T06:00") == [
        ("2026-10-26T01:30Z", "2026-10-26T02:15Z")
    ]


def test_across_midnight_the_window_covers_the_start_of_the_next_day_and_days_name_the_start_day() -> None:
    win = window(start="23:30", duration="1h", days=["sun"], timezone="Europe/Madrid")
    # Sunday 2026-01-04 23:30 CET is 22:30Z; it closes Monday 00:30 CET (23:30Z).
    assert open_spans(win, "2026-01-03T00:00", "2026-01-07T00:00") == [
        ("2026-01-04T22:30Z", "2026-01-04T23:30Z")
    ]
    assert win.open_until(utc("2026-01-04T23:15")) == utc("2026-01-04T23:30")  # Monday 00:15 local


def test_days_leave_the_other_days_alone() -> None:
    win = window(start="12:00", duration="1h", days=["wed", "Saturday"], timezone="UTC")
    spans = open_spans(win, "2026-01-12T00:00", "2026-01-19T00:00", step=300)
    assert spans == [("2026-01-14T12:00Z", "2026-01-14T13:00Z"), ("2026-01-17T12:00Z", "2026-01-17T13:00Z")]


def test_targets_globs_choose_what_the_window_covers_and_none_means_every_target() -> None:
    assert window(start="02:00", targets=["db", "api-*"]).covers("api-eu")
    assert window(start="02:00", targets=["db", "api-*"]).covers("DB")
    assert not window(start="02:00", targets=["db", "api-*"]).covers("web")
    assert window(start="02:00").covers("anything")


def test_the_calendar_names_the_window_that_closes_last() -> None:
    early = read_window({"name": "a", "start": "01:00", "duration": "2h", "timezone": "UTC"}, 1, SOURCE)
    late = read_window({"name": "b", "start": "01:30", "duration": "2h", "timezone": "UTC"}, 2, SOURCE)
    calendar = Calendar((early, late), clock=lambda: utc("2026-01-14T02:00"))
    found = calendar.open_for("db")
    assert found is not None and found[0].name == "b" and found[1] == utc("2026-01-14T03:30")
    assert dict(calendar.open_now()) == {"a": utc("2026-01-14T03:00"), "b": utc("2026-01-14T03:30")}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("timezone", "Europe/Madird", "timezone='Europe/Madird' is invalid: not an IANA time zone name"),
        ("timezone", "../etc/passwd", "timezone='../etc/passwd' is invalid: not an IANA time zone name"),
        ("start", "25:00", "start='25:00' is invalid: expected a 24-hour time like 02:00 or 23:30"),
        ("start", "2am", "start='2am' is invalid: expected a 24-hour time"),
        (
            "days",
            ["sun", "funday"],
            "days has 'funday': expected a list of mon, tue, wed, thu, fri, sat, sun",
        ),
        ("duration", "45x", "duration='45x' is invalid: expected a duration like 90s, 45m, 2h, 1d or 1h30m"),
        ("duration", "8d", "duration='8d' is invalid: expected at most 7d"),
        ("colour", "red", "unknown key 'colour'"),
    ],
)
def test_a_bad_window_is_a_config_error_naming_it(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    raw = {"name": "nightly-backup", "start": "02:00", "duration": "45m", key: value}
    lines = [f"{k} = {toml(v)}" for k, v in raw.items()]
    path = tmp_path / "targets.toml"
    path.write_text(
        '[[targets]]\nname = "db"\nurl = "http://127.0.0.1:9/health"\n\n[[maintenance]]\n' + "\n".join(lines)
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"MONITOR_ENV_FILE": "", "MONITOR_TARGETS_FILE": str(path)})
    assert f"maintenance 'nightly-backup': {message}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_windows_are_read_from_the_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(
        '[[targets]]\nname = "db"\nurl = "http://127.0.0.1:9/health"\n\n'
        '[[maintenance]]\nname = "nightly-backup"\ntargets = ["db"]\nstart = "02:00"\nduration = "45m"\n'
        'days = ["sun", "wed"]\ntimezone = "Europe/Madrid"\n'
    )
    settings = load_settings({"MONITOR_ENV_FILE": "", "MONITOR_TARGETS_FILE": str(path)})
    (win,) = settings.maintenance
    assert (win.name, win.targets, win.start.isoformat(), win.duration, sorted(win.days), win.timezone) == (
        "nightly-backup",
        ("db",),
        "02:00:00",
        2700.0,
        [2, 6],
        "Europe/Madrid",
    )


def toml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return f'"{value}"'
