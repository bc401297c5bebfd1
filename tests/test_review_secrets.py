"""Secrets in settings that fail validation: the error line names the setting, never the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepalive.config import load_settings
from keepalive.errors import ConfigError
from keepalive.fanout import load_fanout
from keepalive.targets import public_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ops:pw-123456@[::1/health", "http://ops:***@[::1/health"),
        ("http://ops:pw-123456@host:99999/x", "http://ops:***@host:99999/x"),
        ("http://host:99999/x", "http://host:99999/x"),
    ],
)
def test_an_unparseable_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_a_bad_alertmanager_url_error_does_not_quote_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_fanout({"ALERTMANAGER_URLS": "http://am:pw-123456@[::1/"})
    message = str(caught.value)
    assert message.startswith("ALERTMANAGER_URLS entry 'http://am:***@[::1/' is invalid: not a valid URL")
    assert "pw-123456" not in message


@pytest.mark.parametrize(
    "url",
    ["http://ops:pw-123456@[::1/health", "tcp://ops:pw-123456@[::1", "tcp://ops:pw-123456@db:5432"],
)
def test_a_bad_target_url_error_does_not_quote_its_password(tmp_path: Path, url: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(f'[[targets]]\nname = "a"\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"MONITOR_ENV_FILE": "", "MONITOR_TARGETS_FILE": str(path), "MONITOR_STATE_DIR": str(tmp_path)},
            root=tmp_path,
        )
    message = str(caught.value)
    assert "url='" in message and "ops:***@" in message and "pw-123456" not in message


def test_a_bad_url_setting_error_does_not_quote_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "MONITOR_ENV_FILE": "",
                "HEALTH_CHECK_URL": "http://ops:pw-123456@[::1/health",
                "MONITOR_STATE_DIR": str(tmp_path),
            },
            root=tmp_path,
        )
    message = str(caught.value)
    assert message.startswith("HEALTH_CHECK_URL='http://ops:***@[::1/health' is invalid")
    assert "pw-123456" not in message
