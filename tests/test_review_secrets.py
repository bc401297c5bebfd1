"""Secrets in settings that fail validation: the error line names the setting, never the secret."""

from __future__ import annotations

import pytest

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
