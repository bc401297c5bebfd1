"""The API token file (SPEC 12): generated once, 0600, reused; a broken file is one clear line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from keepalive.apitoken import ensure_token, read_token, token_matches
from keepalive.config import load_settings
from keepalive.errors import ConfigError
from keepalive.scrub import scrub


def test_a_token_is_generated_at_the_first_start_0600_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ensure_token(state, None)
    path = state / "api_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and all(c.isalnum() or c in "-_" for c in first)
    assert ensure_token(state, None) == first
    assert read_token(state) == first
    assert scrub(f"Authorization: Bearer {first}") == "Authorization: Bearer ***"
    assert [p.name for p in state.iterdir()] == ["api_token"]  # no temporary file left behind


def test_a_configured_token_wins_and_no_file_is_written(tmp_path: Path) -> None:
    assert ensure_token(tmp_path, "c" * 40) == "c" * 40
    assert not (tmp_path / "api_token").exists()
    assert read_token(tmp_path) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"short\n", "is invalid: expected one line of at least 32 characters (delete it to have a new one"),
        (b"\xff" * 40, "is invalid: not ASCII text"),
        (b"x" * 5000, "is invalid: expected one line of at least 32 characters"),
    ],
)
def test_a_broken_token_file_is_one_line_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "api_token").write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        ensure_token(tmp_path, None)
    assert str(caught.value).startswith(f"API token file {str(tmp_path / 'api_token')!r} {message}")
    assert "\n" not in str(caught.value)


def test_an_unwritable_state_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot be read: Not a directory"):
        ensure_token(blocker / "state", None)


def test_the_comparison_is_exact() -> None:
    assert token_matches("a" * 40, "a" * 40)
    assert not token_matches("a" * 40, "a" * 39)
    assert not token_matches("a" * 40, "a" * 39 + "b")
    assert not token_matches("a" * 40, "")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MONITOR_API_TOKEN": "too-short"}, "MONITOR_API_TOKEN=*** (set) is invalid: expected at least 32"),
        (
            {"MONITOR_HTTP_AUTH": "everything"},
            "MONITOR_HTTP_AUTH='everything' is invalid: expected writes or all",
        ),
        ({"MAX_SILENCE": "forever"}, "MAX_SILENCE='forever' is invalid: expected a duration like 90s"),
        ({"MAX_SILENCE": "400d"}, "MAX_SILENCE='400d' is invalid: expected at most 366d"),
    ],
)
def test_bad_settings_are_one_line_naming_them(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MONITOR_ENV_FILE": "", **env})
    assert str(caught.value).startswith(message)
    assert "too-short" not in str(caught.value)


def test_the_settings_are_read() -> None:
    quiet = load_settings(
        {
            "MONITOR_ENV_FILE": "",
            "MONITOR_HTTP_AUTH": "ALL",
            "MAX_SILENCE": "1d12h",
            "MONITOR_API_TOKEN": "k" * 32,
        }
    ).quiet
    assert (quiet.http_auth, quiet.max_silence, quiet.api_token) == ("all", 36 * 3600.0, "k" * 32)
    assert "k" * 32 not in repr(quiet)
