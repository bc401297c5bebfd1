"""Settings of SPEC 17 (keepalive/fanout.py) and the targets' severity and labels: one line
naming the setting for each bad value, and no token in any of them or in --check-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepalive.config import load_settings
from keepalive.errors import ConfigError
from keepalive.fanout import hidden_url, short_hash
from tests.fakes.engine import targets_settings, toml_targets
from tests.monitor_proc import base_env, run_cli

TOKEN = "S3cretT0kenInTheUrl123"
HOOK = f"https://hooks.example.com/services/{TOKEN}"


def load(tmp_path: Path, **values: str) -> object:
    return load_settings(
        {"MONITOR_ENV_FILE": "", "MONITOR_STATE_DIR": str(tmp_path / "s"), **values}, root=tmp_path
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"WEBHOOK_URLS": f"ftp://x.example/{TOKEN}"},
            f"WEBHOOK_URLS entry ftp://x.example#{short_hash(f'ftp://x.example/{TOKEN}')} is invalid: "
            "expected an http:// or https:// URL",
        ),
        ({"WEBHOOK_URLS": f"{HOOK},{HOOK}"}, "WEBHOOK_URLS is invalid: the same URL is listed twice"),
        ({"WEBHOOK_SECRET": "short"}, "WEBHOOK_SECRET=*** (set) is invalid: expected at least 16 characters"),
        (
            {"APPRISE_URLS": f"no-scheme-{TOKEN}"},
            f"APPRISE_URLS entry apprise#{short_hash(f'no-scheme-{TOKEN}')} is invalid: expected an Apprise URL "
            "such as discord://webhook_id/webhook_token or ntfys://topic",
        ),
        (
            {"ALERTMANAGER_URLS": "am1:9093"},
            "ALERTMANAGER_URLS entry 'am1:9093' is invalid: expected an http:// or https:// URL",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_no_token(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **values)
    assert str(caught.value) == message
    assert TOKEN not in str(caught.value)


def test_hidden_url_keeps_scheme_host_and_port_only() -> None:
    assert hidden_url("https://user:pw@hooks.example.com:8443/a/b?token=x") == (
        f"https://hooks.example.com:8443#{short_hash('https://user:pw@hooks.example.com:8443/a/b?token=x')}"
    )


def test_check_config_shows_no_token_and_the_share(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(toml_targets({"name": "api", "url": "http://127.0.0.1:5004/health"}))
    env = base_env(
        tmp_path,
        MONITOR_TARGETS_FILE=str(targets),
        WEBHOOK_URLS=HOOK,
        WEBHOOK_SECRET=f"secret-{TOKEN}",
        APPRISE_URLS=f"slack://{TOKEN}/B0/C0",  # Slack's first token is the URL's host
        ALERTMANAGER_URLS="http://am:pass-word-1@127.0.0.1:9093",
        MONITOR_NAME="b",
        MONITOR_REPLICAS="a,b",
        MONITOR_COPIES="1",
    )

    result = run_cli(["--check-config"], env)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert TOKEN not in out and "pass-word-1" not in out
    rows = dict(
        line.split(None, 1) for line in out.splitlines() if line.startswith("  ") and len(line.split()) > 1
    )
    assert rows["WEBHOOK_URLS"] == f"https://hooks.example.com#{short_hash(HOOK)}"
    assert rows["WEBHOOK_SECRET"] == "*** (set)"
    assert rows["APPRISE_URLS"] == f"slack#{short_hash(f'slack://{TOKEN}/B0/C0')}"
    assert rows["ALERTMANAGER_URLS"] == "http://am:***@127.0.0.1:9093"
    assert "replica b of 2 (a, b), copies 1: checks " in out
    assert "  alertmanager on   1 instance(s)" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"severity": "very bad"},
            "severity='very bad' is invalid: expected a word such as critical or warning",
        ),
        ({"labels": '{ alertname = "x" }'}, "labels.alertname is invalid: expected a label name"),
        ({"labels": "{ team = 5 }"}, "labels.team=5 is invalid: expected a string of at most 200 characters"),
    ],
)
def test_bad_severity_or_labels_name_the_target(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    text = '[[targets]]\nname = "api"\nurl = "http://127.0.0.1:5004/health"\n'
    text += "".join(
        f"{k} = {v if k == 'labels' else repr(v).replace(chr(39), chr(34))}\n" for k, v in extra.items()
    )
    with pytest.raises(ConfigError) as caught:
        targets_settings(tmp_path, text)
    assert "target 'api'" in str(caught.value)
    assert message in str(caught.value)


def test_severity_and_labels_are_read(tmp_path: Path) -> None:
    text = '[[targets]]\nname = "api"\nurl = "http://127.0.0.1:5004/health"\nseverity = "warning"\n'
    text += 'labels = { team = "pay", env = "prod" }\n'
    (target,) = targets_settings(tmp_path, text).targets
    assert (target.severity, target.labels) == ("warning", (("env", "prod"), ("team", "pay")))
