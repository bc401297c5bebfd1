"""The TOML targets file: defaults, per-target overrides, and each error naming the target."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepalive.config import load_settings
from keepalive.errors import ConfigError


def load(tmp_path: Path, text: str, **env: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return load_settings({"MONITOR_ENV_FILE": "", "MONITOR_TARGETS_FILE": str(path), **env}, root=tmp_path)


def test_defaults_section_and_per_target_overrides(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        """
[defaults]
interval = 60
failure_threshold = 3
timeout = 2.5

[[targets]]
name = "game"
url = "http://127.0.0.1:5004/health"

[[targets]]
name = "bot"
url = "https://bot.example.test/health"
interval = 10
failure_threshold = 1
success_threshold = 2
timeout = 1
expect_status = ["ok", "healthy"]
max_latency_ms = 800
reuse_connection = true
""",
        SUCCESS_THRESHOLD="1",
    )
    game, bot = s.targets
    assert (game.name, game.interval, game.failure_threshold, game.timeout) == ("game", 60.0, 3, 2.5)
    assert game.expect_status == ("ok",)
    assert game.max_latency_ms is None
    assert game.reuse_connection is False
    assert (bot.interval, bot.failure_threshold, bot.success_threshold, bot.timeout) == (10.0, 1, 2, 1.0)
    assert bot.expect_status == ("ok", "healthy")
    assert bot.max_latency_ms == 800.0
    assert bot.reuse_connection is True


def test_follow_redirects_defaults_to_true_and_is_set_per_target_or_in_defaults(tmp_path: Path) -> None:
    plain = load(tmp_path, '[[targets]]\nname = "a"\nurl = "http://x/h"\n').targets
    assert [t.follow_redirects for t in plain] == [True]
    text = (
        "[defaults]\nfollow_redirects = false\n"
        '[[targets]]\nname = "a"\nurl = "http://x/h"\n'
        '[[targets]]\nname = "b"\nurl = "http://y/h"\nfollow_redirects = true\n'
    )
    assert [t.follow_redirects for t in load(tmp_path, text).targets] == [False, True]


def test_settings_are_the_defaults_when_the_file_has_no_defaults_section(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        '[[targets]]\nname = "a"\nurl = "http://127.0.0.1/health"\n',
        CHECK_INTERVAL_SECONDS="30",
        FAILURE_THRESHOLD="5",
        REQUEST_TIMEOUT="3",
    )
    assert (s.targets[0].interval, s.targets[0].failure_threshold, s.targets[0].timeout) == (30.0, 5, 3.0)


GOOD = 'name = "a"\nurl = "http://127.0.0.1/health"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[[targets]]\n{GOOD}\n[[targets]]\n{GOOD}", "target 'a': duplicate name"),
        ('[[targets]]\nname = "a"\n', "target 'a': url is missing"),
        (
            '[[targets]]\nname = "a"\nurl = "ftp://x/health"\n',
            "target 'a': url='ftp://x/health' is invalid: expected an http:// or https:// URL",
        ),
        (
            '[[targets]]\nname = "a"\nurl = "http://x:99999/health"\n',
            "target 'a': url='http://x:99999/health' is invalid: not a valid URL",
        ),
        (f"[[targets]]\n{GOOD}intervall = 5\n", "target 'a': unknown key 'intervall'"),
        (f"[[targets]]\n{GOOD}interval = 0\n", "target 'a': interval=0 is invalid: expected a number >= 0.1"),
        (
            f'[[targets]]\n{GOOD}interval = "10"\n',
            "target 'a': interval='10' is invalid: expected a number >= 0.1",
        ),
        (
            f"[[targets]]\n{GOOD}failure_threshold = 1.5\n",
            "target 'a': failure_threshold=1.5 is invalid: expected an integer >= 1",
        ),
        (f"[[targets]]\n{GOOD}expect_status = []\n", "target 'a': expect_status=[] is invalid"),
        (
            f'[[targets]]\n{GOOD}reuse_connection = "yes"\n',
            "target 'a': reuse_connection='yes' is invalid: expected true or false",
        ),
        (f"[[targets]]\n{GOOD}max_latency_ms = -5\n", "target 'a': max_latency_ms=-5 is invalid"),
        (
            f"[[targets]]\n{GOOD}follow_redirects = 1\n",
            "target 'a': follow_redirects=1 is invalid: expected true or false",
        ),
        (
            f'[defaults]\nfollow_redirects = "no"\n[[targets]]\n{GOOD}',
            "[defaults]: follow_redirects='no' is invalid: expected true or false",
        ),
        (
            f'[[targets]]\n{GOOD}\n[[targets]]\nname = "A"\nurl = "http://x/health"\n',
            "target 'A': duplicate name: 'A' and 'a' differ only in case or spacing",
        ),
        (
            '[[targets]]\nname = "game  server"\nurl = "http://x/h"\n'
            '[[targets]]\nname = "Game Server"\nurl = "http://y/h"\n',
            "target 'Game Server': duplicate name: 'Game Server' and 'game  server' differ only in case or spacing",
        ),
        (
            '[[targets]]\nname = " a"\nurl = "http://x/health"\n',
            "target ' a': the name starts or ends with white space (remove it)",
        ),
        (
            '[[targets]]\nname = "a\\t"\nurl = "http://x/health"\n',
            "target 'a\\t': the name starts or ends with white space (remove it)",
        ),
        ('[[targets]]\nurl = "http://x/health"\n', "[[targets]] entry 1 has no name"),
        ("[defaults]\ninterval = 10\n", "no [[targets]] entries"),
        (f'[defaults]\nname = "x"\n[[targets]]\n{GOOD}', "[defaults]: unknown key 'name'"),
        (f"[extra]\n[[targets]]\n{GOOD}", "unknown section 'extra'"),
        ("[[targets]\nname = ", "invalid TOML"),
    ],
)
def test_each_targets_file_error_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert message in str(info.value)
    assert "MONITOR_TARGETS_FILE" in str(info.value)
    assert "\n" not in str(info.value)
