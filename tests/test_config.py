"""Settings: defaults, .env, environment precedence, and every validation error."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepalive.config import DEFAULTS, load_settings
from keepalive.errors import ConfigError
from keepalive.scrub import scrub

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijklmn"


def settings_from(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings({"MONITOR_ENV_FILE": "", **env}, root=tmp_path)


def test_defaults_match_the_spec(tmp_path: Path) -> None:
    s = settings_from(tmp_path)
    assert s.health_check_url == "http://localhost:5004/health"
    assert s.check_interval == 600.0
    assert s.failure_threshold == 2
    assert s.request_timeout == 5.0
    assert s.repeat_alerts is True
    assert s.success_threshold == 1
    assert s.digest_after == 3
    assert s.heartbeat_url is None
    assert s.telegram_api_url == "https://api.telegram.org"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 5005)
    assert s.smtp_security == "starttls"
    assert s.state_dir == tmp_path / "state"
    assert s.events_file == tmp_path / "logs" / "monitor_events.jsonl"
    assert s.pid_file == tmp_path / "monitor.pid"
    assert [t.url for t in s.targets] == ["http://localhost:5004/health"]


def test_placeholders_turn_both_channels_off(tmp_path: Path) -> None:
    s = settings_from(tmp_path)
    assert not s.telegram.enabled
    assert not s.email.enabled
    assert s.channel_summary() == (
        "channels on=[log] off=[telegram (TELEGRAM_BOT_TOKEN is not set), email (SMTP_SERVER is not set)]"
    )


def test_real_values_turn_channels_on(tmp_path: Path) -> None:
    s = settings_from(
        tmp_path,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_CHAT_ID="111, -100222",
        SMTP_SERVER="127.0.0.1",
        SMTP_USERNAME="",
        EMAIL_SENDER="monitor@host.test",
        EMAIL_RECIPIENT="a@x.test,b@x.test",
    )
    assert s.telegram.enabled and s.email.enabled
    assert s.telegram_chat_ids == ("111", "-100222")
    assert s.email_recipients == ("a@x.test", "b@x.test")
    assert s.smtp_username is None


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FAILURE_THRESHOLD=4\nCHECK_INTERVAL_SECONDS=30\n")
    s = load_settings({"CHECK_INTERVAL_SECONDS": "7.5"}, root=tmp_path)
    assert s.failure_threshold == 4
    assert s.check_interval == 7.5


def test_effective_settings_mask_secrets(tmp_path: Path) -> None:
    s = settings_from(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, SMTP_PASSWORD="hunter2-password")
    shown = dict(s.effective())
    assert shown["TELEGRAM_BOT_TOKEN"] == "*** (set)"
    assert shown["SMTP_PASSWORD"] == "*** (set)"
    assert TOKEN not in str(s.effective())
    # Loading registers the secrets with the scrubber.
    assert scrub(f"url https://x/bot{TOKEN}/send pw hunter2-password") == "url https://x/bot***/send pw ***"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "CHECK_INTERVAL_SECONDS",
            "abc",
            "CHECK_INTERVAL_SECONDS='abc' is invalid: expected a number of seconds >= 0.1",
        ),
        (
            "CHECK_INTERVAL_SECONDS",
            "0.05",
            "CHECK_INTERVAL_SECONDS='0.05' is invalid: expected a number of seconds >= 0.1",
        ),
        (
            "CHECK_INTERVAL_SECONDS",
            "nan",
            "CHECK_INTERVAL_SECONDS='nan' is invalid: expected a number of seconds >= 0.1",
        ),
        ("FAILURE_THRESHOLD", "0", "FAILURE_THRESHOLD='0' is invalid: expected an integer >= 1"),
        ("FAILURE_THRESHOLD", "2.5", "FAILURE_THRESHOLD='2.5' is invalid: expected an integer >= 1"),
        ("REQUEST_TIMEOUT", "-1", "REQUEST_TIMEOUT='-1' is invalid: expected a number of seconds >= 0.01"),
        ("REPEAT_ALERTS", "maybe", "REPEAT_ALERTS='maybe' is invalid: expected true or false"),
        ("SUCCESS_THRESHOLD", "x", "SUCCESS_THRESHOLD='x' is invalid: expected an integer >= 1"),
        ("DIGEST_AFTER", "0", "DIGEST_AFTER='0' is invalid: expected an integer >= 1"),
        (
            "HEALTH_CHECK_URL",
            "ftp://host/health",
            "HEALTH_CHECK_URL='ftp://host/health' is invalid: expected an http:// or https:// URL",
        ),
        (
            "HEALTH_CHECK_URL",
            "http:///health",
            "HEALTH_CHECK_URL='http:///health' is invalid: the URL has no host",
        ),
        (
            "HEARTBEAT_URL",
            "hc-ping.com/abc",
            "HEARTBEAT_URL='hc-ping.com/abc' is invalid: expected an http:// or https:// URL",
        ),
        (
            "TELEGRAM_BOT_TOKEN",
            "not-a-token",
            "TELEGRAM_BOT_TOKEN=*** (set) is invalid: expected a token from BotFather like 123456789:AAE...",
        ),
        (
            "TELEGRAM_CHAT_ID",
            "12,abc",
            "TELEGRAM_CHAT_ID='abc' is invalid: expected numeric chat ids (or @channelname), comma-separated",
        ),
        (
            "TELEGRAM_API_URL",
            "api.telegram.org",
            "TELEGRAM_API_URL='api.telegram.org' is invalid: expected an http:// or https:// URL",
        ),
        ("SMTP_PORT", "70000", "SMTP_PORT='70000' is invalid: expected an integer from 1 to 65535"),
        ("SMTP_SECURITY", "tls", "SMTP_SECURITY='tls' is invalid: expected one of starttls, ssl, none"),
        (
            "EMAIL_RECIPIENT",
            "ops@x.test,nobody",
            "EMAIL_RECIPIENT='nobody' is invalid: expected e-mail addresses, comma-separated",
        ),
        ("EMAIL_SENDER", "monitor", "EMAIL_SENDER='monitor' is invalid: expected an e-mail address"),
        ("MONITOR_HTTP_PORT", "-1", "MONITOR_HTTP_PORT='-1' is invalid: expected an integer from 0 to 65535"),
        (
            "MONITOR_HTTP_HOST",
            "",
            "MONITOR_HTTP_HOST='' is invalid: expected an address to listen on, such as 127.0.0.1",
        ),
        ("MONITOR_MAX_CONCURRENCY", "0", "MONITOR_MAX_CONCURRENCY='0' is invalid: expected an integer >= 1"),
        ("MONITOR_TARGETS_FILE", "missing.toml", "is invalid: the file does not exist"),
    ],
)
def test_each_bad_setting_gives_one_line_naming_it(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, **{name: value})
    text = str(info.value)
    assert message in text
    assert name in text
    assert "\n" not in text


def test_a_bad_token_is_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, TELEGRAM_BOT_TOKEN="secret value with spaces")
    assert "secret value" not in str(info.value)


def test_email_without_a_from_address_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EMAIL_SENDER is not set"):
        settings_from(tmp_path, SMTP_SERVER="127.0.0.1", SMTP_USERNAME="", EMAIL_RECIPIENT="a@x.test")


def test_every_setting_is_documented_in_env_example() -> None:
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    for name in DEFAULTS:
        assert f"{name}=" in example, name


def test_a_dotenv_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"FAILURE_THRESHOLD=3\nNAME=\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"MONITOR_ENV_FILE='.*\.env' is invalid: not UTF-8 text"):
        load_settings({}, root=tmp_path)


def test_a_targets_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(b'[[targets]]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="invalid TOML: not UTF-8 text"):
        settings_from(tmp_path, MONITOR_TARGETS_FILE=str(path))
