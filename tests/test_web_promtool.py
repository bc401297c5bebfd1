"""Prometheus's own tool judges our exposition and our alerting rules.

promtool comes with Debian's ``prometheus`` package, which .ci/run installs: in CI (CI set)
a missing promtool fails these tests; elsewhere they are skipped with a hint.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.targets import TargetServer
from tests.fakes.telegram_api import FakeTelegram
from tests.monitor_proc import ROOT, MonitorProcess, base_env, free_port, wait_until
from tests.test_web import UNKNOWN_TARGET, FakeView, serving

PROMTOOL = shutil.which("promtool")
RULES = ROOT / "docs" / "prometheus" / "keepalive-rules.yml"
RULE_TESTS = ROOT / "docs" / "prometheus" / "keepalive-rules.test.yml"

pytestmark = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("CI"),
    reason="needs promtool from Debian's prometheus package (apt-get install -y prometheus)",
)


def promtool(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is missing: .ci/run installs Debian's prometheus package"
    return subprocess.run(
        [PROMTOOL, *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def assert_clean(exposition: bytes) -> None:
    result = promtool("check", "metrics", stdin=exposition)
    # check metrics prints one line per lint problem, on stderr or stdout depending on the version.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_exposition_of_every_kind_of_value_passes_promtool() -> None:
    # Stalled, an unchecked target (no up sample), no lag measured yet, an empty outbox.
    views = [FakeView(), FakeView(stalled=True, extra_targets=(UNKNOWN_TARGET,))]
    views[1].document["monitor"]["schedule_lag_seconds"] = {"p50": None, "p99": None, "max": None}
    views[1].document["monitor"]["oldest_undelivered_age_seconds"] = None

    async def scrape(view: FakeView) -> bytes:
        async with (
            serving(view) as base,
            aiohttp.ClientSession() as session,
            session.get(base + "/metrics") as response,
        ):
            return await response.read()

    for view in views:
        assert_clean(asyncio.run(scrape(view)))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def status(base: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(get(base + "/api/status?history=0"))
    return document


@pytest.mark.slow
def test_a_real_scrape_of_a_running_monitor_passes_promtool(tmp_path: Path) -> None:
    with TargetServer() as server, FakeTelegram() as telegram:
        server.set_mode("broken", "http500")
        telegram.block("1")  # 403: the DOWN alert to chat 1 fails for good; chat 2 gets it
        targets = tmp_path / "targets.toml"
        targets.write_text(
            "[defaults]\ninterval = 0.2\ntimeout = 2\nfailure_threshold = 2\n"
            f'[[targets]]\nname = "good"\nurl = "{server.url("good")}"\n'
            f'[[targets]]\nname = "broken"\nurl = "{server.url("broken")}"\n'
        )
        port = free_port()
        env = base_env(
            tmp_path,
            MONITOR_TARGETS_FILE=str(targets),
            MONITOR_HTTP_PORT=str(port),
            TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_CHAT_ID="1,2",
            TELEGRAM_API_URL=telegram.url,
            REPEAT_ALERTS="false",
        )
        monitor = MonitorProcess(tmp_path, env).start()
        base = f"http://127.0.0.1:{port}"
        try:
            monitor.wait_event("target_down", target="broken")

            def settled() -> bool:
                document = status(base)
                states = {t["name"]: t["state"] for t in document["targets"]}
                channel = next(c for c in document["channels"] if c["name"] == "telegram")
                return states == {"good": "up", "broken": "down"} and (
                    channel["failed_total"],
                    channel["sent_total"],
                ) == (1, 1)

            wait_until(settled, timeout=30, what="a target up, one down, one alert failed and one sent")
            exposition = get(base + "/metrics")
        finally:
            monitor.stop()
    text = exposition.decode()
    assert 'keepalive_target_up{target="broken",url=' in text
    assert 'keepalive_alerts_failed_total{channel="telegram"} 1.0' in text
    assert 'keepalive_alerts_sent_total{channel="telegram"} 1.0' in text
    assert "keepalive_outbox_depth " in text
    assert telegram.token not in text
    assert_clean(exposition)


def test_the_alerting_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_the_alerting_rules_pass_their_unit_tests() -> None:
    # Among them: a dead monitor among several fires, which absent(keepalive_up) never did.
    result = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_example_prometheus_configuration_passes_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml", cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: prometheus.yml is valid prometheus config file syntax" in result.stdout
