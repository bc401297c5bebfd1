"""Settings: defaults, .env, environment precedence, and every validation error."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from keepalive.config import DEFAULTS, load_settings, script_values
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
            "TELEGRAM_CHAT_ID='abc' is invalid: expected numeric chat ids (or @channelname), "
            "each with an optional :topic, comma-separated",
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
        (
            "MONITOR_HTTP_ALLOWED_HOSTS",
            "status.example.org,*.example.org",
            "MONITOR_HTTP_ALLOWED_HOSTS='status.example.org,*.example.org' is invalid: "
            "expected comma-separated host names such as status.example.com (no wildcards)",
        ),
        (
            "MONITOR_HTTP_ALLOWED_HOSTS",
            "https://status.example.org",
            "MONITOR_HTTP_ALLOWED_HOSTS='https://status.example.org' is invalid",
        ),
        ("MONITOR_HTTP_ALLOWED_HOSTS", "-bad.example.org", "MONITOR_HTTP_ALLOWED_HOSTS='-bad.example.org'"),
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


def test_allowed_hosts_are_lower_case_without_a_trailing_dot(tmp_path: Path) -> None:
    s = settings_from(tmp_path, MONITOR_HTTP_ALLOWED_HOSTS=" Status.Example.ORG. , proxy-1.internal ,")
    assert s.http_allowed_hosts == ("status.example.org", "proxy-1.internal")
    assert settings_from(tmp_path).http_allowed_hosts == ()


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


# ---------------------------------------------------------------------- issue 9: literal .env


def test_dotenv_values_are_taken_literally(tmp_path: Path) -> None:
    # python-dotenv expands ${VAR} unless told not to; a password is text, not a template.
    (tmp_path / ".env").write_text("SMTP_PASSWORD=pa${HOME}ss$(id)\n")
    s = load_settings({}, root=tmp_path)
    assert s.smtp_password == "pa${HOME}ss$(id)"


# ---------------------------------------------------------------------- secrets from files


@pytest.mark.parametrize(
    ("name", "field", "content", "expected"),
    [
        ("TELEGRAM_BOT_TOKEN", "telegram_bot_token", TOKEN + "\n", TOKEN),
        ("SMTP_PASSWORD", "smtp_password", "pw from file\r\n", "pw from file"),
        ("SMTP_PASSWORD", "smtp_password", "no newline", "no newline"),
    ],
)
def test_a_secret_is_read_from_its_file_without_the_trailing_newline(
    tmp_path: Path, name: str, field: str, content: str, expected: str
) -> None:
    (tmp_path / "secret").write_text(content)
    s = settings_from(tmp_path, **{f"{name}_FILE": "secret"})
    assert getattr(s, field) == expected
    shown = dict(s.effective())
    assert shown[name] == f"*** (set) from {name}_FILE"
    assert shown[f"{name}_FILE"] == "secret"
    assert scrub(f"x {expected} y") == "x *** y"


@pytest.mark.parametrize("name", ["TELEGRAM_BOT_TOKEN", "SMTP_PASSWORD"])
def test_a_secret_and_its_file_both_set_is_one_line_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "secret").write_text(TOKEN)
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, **{name: TOKEN, f"{name}_FILE": "secret"})
    assert str(info.value) == f"{name} and {name}_FILE are both set: expected only one of them"


def test_a_placeholder_beside_a_secret_file_is_not_a_conflict(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(TOKEN)
    s = settings_from(
        tmp_path, TELEGRAM_BOT_TOKEN="YOUR_TELEGRAM_BOT_TOKEN", TELEGRAM_BOT_TOKEN_FILE="secret"
    )
    assert s.telegram_bot_token == TOKEN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "SMTP_PASSWORD_FILE='{path}' cannot be read: No such file or directory"),
        (b"", "SMTP_PASSWORD_FILE='{path}' is invalid: the file is empty"),
        (b"\n", "SMTP_PASSWORD_FILE='{path}' is invalid: the file is empty"),
        (b"\xffpw", "SMTP_PASSWORD_FILE='{path}' is invalid: not UTF-8 text (byte 0)"),
        (b"x" * 70000, "SMTP_PASSWORD_FILE='{path}' is invalid: larger than 65536 bytes"),
    ],
)
def test_an_unusable_secret_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "pw"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, SMTP_PASSWORD_FILE="pw")
    assert str(info.value) == message.format(path=path)


def test_an_unreadable_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("secret")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: permissions do not apply")
        with pytest.raises(ConfigError) as info:
            settings_from(tmp_path, SMTP_PASSWORD_FILE=str(path))
        assert str(info.value) == f"SMTP_PASSWORD_FILE='{path}' cannot be read: Permission denied"
    finally:
        path.chmod(0o600)


# ---------------------------------------------------------------------- SMTP_CA_FILE


def _ca_pem() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test mail CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_smtp_ca_file_is_loaded_and_kept(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(_ca_pem())
    assert settings_from(tmp_path).smtp_ca_file is None
    assert settings_from(tmp_path, SMTP_CA_FILE="ca.pem").smtp_ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "SMTP_CA_FILE='{path}' cannot be read: No such file or directory"),
        (b"not a certificate\n", "SMTP_CA_FILE='{path}' is invalid: no PEM certificate in it"),
    ],
)
def test_a_bad_smtp_ca_file_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, SMTP_CA_FILE="ca.pem")
    assert str(info.value) == message.format(path=path)


# ---------------------------------------------------------------------- URL passwords


def test_the_health_check_url_target_name_holds_no_password(tmp_path: Path) -> None:
    s = settings_from(tmp_path, HEALTH_CHECK_URL="http://admin:t0p-s3cret@10.0.0.5:8080/health")
    (target,) = s.targets
    assert target.name == "10.0.0.5:8080"
    assert "t0p-s3cret" not in target.public_url


def test_every_url_password_is_registered_and_masked_in_check_config(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text('[[targets]]\nname = "db"\nurl = "http://u:targ%40pw-1@db.test/health"\n')
    s = settings_from(
        tmp_path,
        MONITOR_TARGETS_FILE=str(targets),
        HEALTH_CHECK_URL="http://u:health-pw-2@h.test/health",
        HEARTBEAT_URL="https://u:beat-pw-3@hc.test/ping",
        TELEGRAM_API_URL="https://bot:api-pw-4@tg.test",
    )
    text = "targ%40pw-1 targ@pw-1 health-pw-2 beat-pw-3 api-pw-4"
    assert scrub(text) == "*** *** *** *** ***"
    shown = dict(s.effective())
    assert shown["HEALTH_CHECK_URL"] == "http://u:***@h.test/health"
    assert shown["HEARTBEAT_URL"] == "https://u:***@hc.test/ping"
    assert shown["TELEGRAM_API_URL"] == "https://bot:***@tg.test"


# ---------------------------------------------------------------------- log rotation, paths


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("1000", 1000), ("512KiB", 512 * 1024), ("10MiB", 10 * 1024**2), ("1 g", 1024**3)],
)
def test_log_max_bytes_takes_units(tmp_path: Path, value: str, expected: int) -> None:
    assert settings_from(tmp_path, MONITOR_LOG_MAX_BYTES=value).log_max_bytes == expected


def test_log_rotation_defaults(tmp_path: Path) -> None:
    s = settings_from(tmp_path)
    assert (s.log_max_bytes, s.log_backups) == (10 * 1024 * 1024, 5)
    assert s.stop_grace == 10
    assert settings_from(tmp_path, REQUEST_TIMEOUT="2.5").stop_grace == 8
    assert settings_from(tmp_path, STOP_GRACE_SECONDS="30").stop_grace == 30


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "MONITOR_LOG_MAX_BYTES",
            "10MB",
            "MONITOR_LOG_MAX_BYTES='10MB' is invalid: expected a size in bytes >= 0, optionally with a unit: "
            "10485760, 512KiB, 10MiB, 1GiB",
        ),
        (
            "MONITOR_LOG_MAX_BYTES",
            "-1",
            "MONITOR_LOG_MAX_BYTES='-1' is invalid: expected a size in bytes >= 0, optionally with a unit: "
            "10485760, 512KiB, 10MiB, 1GiB",
        ),
        (
            "MONITOR_LOG_BACKUPS",
            "0",
            "MONITOR_LOG_BACKUPS='0' is invalid: expected an integer from 1 to 1000",
        ),
        ("STOP_GRACE_SECONDS", "soon", "STOP_GRACE_SECONDS='soon' is invalid: expected an integer >= 1"),
        (
            "MONITOR_LOG_FILE",
            "a\nb$(touch x)",
            "MONITOR_LOG_FILE='a\\nb$(touch x)' is invalid: expected a path without control characters",
        ),
        (
            "MONITOR_PID_FILE",
            "pid\x9bfile",
            "MONITOR_PID_FILE='pid\\x9bfile' is invalid: expected a path without control characters",
        ),
        ("MONITOR_STATE_DIR", "", "MONITOR_STATE_DIR='' is invalid: expected a path"),
        (
            "TELEGRAM_CHAT_ID",
            "111\n222",
            "TELEGRAM_CHAT_ID='111\\n222' is invalid: expected a value without control characters",
        ),
    ],
)
def test_each_new_bad_setting_gives_one_line(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, **{name: value})
    assert str(info.value) == message


# ---------------------------------------------------------------------- values for the scripts


def test_script_values_are_absolute_paths_and_literal_text(tmp_path: Path) -> None:
    values = script_values(
        [
            "MONITOR_PID_FILE",
            "MONITOR_LOG_FILE",
            "MONITOR_HTTP_HOST",
            "MONITOR_HTTP_PORT",
            "STOP_GRACE_SECONDS",
        ],
        {"MONITOR_ENV_FILE": "", "MONITOR_LOG_FILE": "$(touch x).log", "REQUEST_TIMEOUT": "0.5"},
        root=tmp_path,
    )
    assert values == [
        str(tmp_path / "monitor.pid"),
        str(tmp_path / "$(touch x).log"),
        "127.0.0.1",
        "5005",
        "6",
    ]


def test_script_values_need_only_the_settings_asked_for(tmp_path: Path) -> None:
    env = {"MONITOR_ENV_FILE": "", "FAILURE_THRESHOLD": "zero"}
    assert script_values(["MONITOR_PID_FILE"], env, root=tmp_path) == [str(tmp_path / "monitor.pid")]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("SMTP_PASSWORD", "SMTP_PASSWORD is a secret: it is never printed"),
        ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN is a secret: it is never printed"),
        ("PATH", "'PATH' is not a setting (see .env.example)"),
    ],
)
def test_script_values_never_print_secrets_or_unknown_names(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        script_values([name], {"MONITOR_ENV_FILE": ""}, root=tmp_path)
    assert str(info.value) == message


def test_a_dotenv_with_windows_line_ends_reads_the_same(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"FAILURE_THRESHOLD=4\r\nMONITOR_HTTP_HOST=0.0.0.0\r\n")
    s = load_settings({}, root=tmp_path)
    assert (s.failure_threshold, s.http_host) == (4, "0.0.0.0")


def test_a_secret_may_hold_any_character(tmp_path: Path) -> None:
    s = settings_from(tmp_path, SMTP_PASSWORD="tab\there")
    assert s.smtp_password == "tab\there"
