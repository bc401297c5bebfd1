"""The monitor's own endpoint on a running monitor, with one healthy and one failing target."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.browser import CHROMIUM, Chromium
from tests.fakes.targets import TargetServer
from tests.monitor_proc import MonitorProcess, base_env, free_port, wait_until

pytestmark = pytest.mark.slow
EVIL = "<script>alert(1)</script>"
URL_PASSWORD = "Pw-Web-Secret-42"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def get_json(url: str) -> tuple[int, Any]:
    code, body = get(url)
    return code, json.loads(body)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TargetServer, MonitorProcess]]:
    tmp = tmp_path_factory.mktemp("web")
    with TargetServer() as server:
        server.set_mode("broken", "http500")
        targets = tmp / "targets.toml"
        targets.write_text(
            "[defaults]\ninterval = 0.2\ntimeout = 2\nfailure_threshold = 2\n"
            f'[[targets]]\nname = {json.dumps(EVIL)}\nurl = "{server.url("good")}"\n'
            f'[[targets]]\nname = "broken"\n'
            f'url = "{server.url("broken").replace("http://", f"http://probe:{URL_PASSWORD}@")}"\n'
        )
        port = free_port()
        env = base_env(
            tmp,
            MONITOR_TARGETS_FILE=str(targets),
            MONITOR_HTTP_PORT=str(port),
            HEARTBEAT_URL=server.url("heartbeat"),
            TELEGRAM_BOT_TOKEN="123123123:AAWebTestTokenMustNeverShow_abcdefghij",
            TELEGRAM_CHAT_ID="1",
            TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
            MONITOR_HTTP_ALLOWED_HOSTS="Status.Example.org, other-alias.example.org.",
        )
        mon = MonitorProcess(tmp, env).start()
        base = f"http://127.0.0.1:{port}"
        try:
            mon.wait_event("target_down", target="broken")
            # A target going up for the first time writes no event; its first check may still be
            # on its way when the other target is already down.
            wait_until(
                lambda: get_json(base + "/health")[1]["targets_up"] == 1, what=f"{EVIL} checked and up"
            )
            yield base, server, mon
        finally:
            mon.stop()


def test_health_is_ok_while_checks_progress(running: tuple[str, TargetServer, MonitorProcess]) -> None:
    base, _, _ = running
    code, body = get_json(base + "/health")
    assert code == 200
    assert body["status"] == "ok"
    assert (body["targets_up"], body["targets_down"]) == (1, 1)
    assert body["uptime_seconds"] > 0
    assert "outbox_depth" in body and "oldest_undelivered_age_seconds" in body


def test_api_status_shows_each_target_and_channel(running: tuple[str, TargetServer, MonitorProcess]) -> None:
    base, _, _ = running
    code, doc = get_json(base + "/api/status?history=1")
    assert code == 200
    targets = {t["name"]: t for t in doc["targets"]}
    assert targets[EVIL]["state"] == "up"
    assert targets[EVIL]["last_latency_ms"] > 0
    assert targets[EVIL]["uptime_percent"] == 100.0
    assert targets["broken"]["state"] == "down"
    assert targets["broken"]["last_reason"] == "HTTP 500"
    assert targets["broken"]["consecutive_failures"] >= 2
    assert targets["broken"]["uptime_percent"] == 0.0
    assert targets["broken"]["history"] and targets["broken"]["history"][-1][2] is False
    channels = {c["name"]: c for c in doc["channels"]}
    assert channels["telegram"]["enabled"] is True
    assert channels["email"]["enabled"] is False
    _, slim = get_json(base + "/api/status?history=0")
    assert all("history" not in t for t in slim["targets"])


def test_metrics_parse_and_carry_per_target_values(running: tuple[str, TargetServer, MonitorProcess]) -> None:
    base, _, _ = running
    code, text = get(base + "/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    up = {
        dict(labels)["target"]: value
        for (name, labels), value in samples.items()
        if name == "keepalive_target_up"
    }
    assert up == {EVIL: 1.0, "broken": 0.0}
    failures = {
        dict(labels)["target"]: value
        for (name, labels), value in samples.items()
        if name == "keepalive_target_consecutive_failures"
    }
    assert failures["broken"] >= 2
    assert any(name == "keepalive_outbox_depth" for name, _ in samples)
    assert any(name == "keepalive_build_info" for name, _ in samples)


@pytest.mark.parametrize(
    ("host", "code"),
    [
        ("status.example.org", 200),  # a name from MONITOR_HTTP_ALLOWED_HOSTS, as a proxy passes it
        ("STATUS.example.org:443", 200),
        ("other-alias.example.org", 200),
        ("rebinding.example.org", 421),  # any other name is still refused
    ],
)
def test_names_in_allowed_hosts_are_answered_and_others_refused(
    running: tuple[str, TargetServer, MonitorProcess], host: str, code: int
) -> None:
    base, _, _ = running
    request = urllib.request.Request(base + "/api/status?history=0", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as err:
        status = err.code
    assert status == code


def test_no_page_shows_a_secret_and_unknown_paths_are_404(
    running: tuple[str, TargetServer, MonitorProcess],
) -> None:
    base, _, mon = running
    pages = [get(base + path)[1] for path in ("/", "/health", "/api/status", "/metrics", "/static/status.js")]
    token = mon.env["TELEGRAM_BOT_TOKEN"]
    assert all(token not in page for page in pages)
    assert all(URL_PASSWORD not in page for page in pages)
    assert get(base + "/nope")[0] == 404


def test_a_url_password_is_masked_in_status_and_metric_labels(
    running: tuple[str, TargetServer, MonitorProcess],
) -> None:
    base, server, _ = running
    masked = server.url("broken").replace("http://", "http://probe:***@")
    _, doc = get_json(base + "/api/status?history=0")
    assert {t["name"]: t["url"] for t in doc["targets"]}["broken"] == masked
    _, text = get(base + "/metrics")
    labels = [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "keepalive_target_up" and s.labels["target"] == "broken"
    ]
    assert labels == [{"target": "broken", "url": masked}]


def test_the_heartbeat_reaches_its_url_while_the_loop_runs(
    running: tuple[str, TargetServer, MonitorProcess],
) -> None:
    _, server, _ = running
    assert server.wait_for_requests("heartbeat", 1)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium")
def test_the_page_in_a_browser_shows_both_targets(
    running: tuple[str, TargetServer, MonitorProcess], tmp_path: Path
) -> None:
    base, _, _ = running

    async def shown() -> tuple[dict[str, str], str]:
        async with Chromium() as browser:
            await browser.open(base + "/")
            await browser.wait_for("document.querySelectorAll('#target-rows tr.row').length === 2")
            rows = await browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#target-rows tr.row')]"
                ".map((tr) => [tr.dataset.target, tr.className]))"
            )
            return rows, await browser.evaluate("document.documentElement.outerHTML")

    rows, dumped = asyncio.run(shown())
    assert rows == {"broken": "row down", EVIL: "row up"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dumped
    assert "probe:***@" in dumped
    assert URL_PASSWORD not in dumped


def test_a_stalled_checking_loop_gives_503(tmp_path: Path) -> None:
    # One check slot, taken by a target that hangs for 30 s: the other target's checks fall
    # overdue, which is exactly what "the checking loop stopped making progress" means.
    with TargetServer() as server:
        server.set_mode("stuck", "hang")
        targets = tmp_path / "targets.toml"
        targets.write_text(
            '[[targets]]\nname = "stuck"\n'
            f'url = "{server.url("stuck")}"\ninterval = 60\ntimeout = 30\n'
            '[[targets]]\nname = "fine"\n'
            f'url = "{server.url("fine")}"\ninterval = 0.2\ntimeout = 0.5\n'
        )
        port = free_port()
        env = base_env(
            tmp_path,
            MONITOR_TARGETS_FILE=str(targets),
            MONITOR_HTTP_PORT=str(port),
            MONITOR_MAX_CONCURRENCY="1",
        )
        mon = MonitorProcess(tmp_path, env).start()
        try:
            assert server.wait_for_requests("stuck", 1)
            _code, body = wait_until(
                lambda: (r := get_json(f"http://127.0.0.1:{port}/health"))[0] == 503 and r,
                timeout=40,
                what="503 stalled",
            )
            assert body["status"] == "stalled"
            assert body["last_progress_age_seconds"] > 0
        finally:
            mon.stop()
