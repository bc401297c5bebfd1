"""health_endpoint.HealthEndpoint and example_server.py, over real loopback sockets."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from health_endpoint import HealthEndpoint

ROOT = Path(__file__).resolve().parent.parent


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    code, headers, body = fetch(url)
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert isinstance(payload, dict)
    return code, payload


@pytest.fixture
def endpoint() -> Iterator[HealthEndpoint]:
    with HealthEndpoint(port=0) as health:
        yield health


def test_it_answers_ok_with_uptime_and_a_utc_timestamp(endpoint: HealthEndpoint) -> None:
    code, payload = get_json(endpoint.url)

    assert code == 200
    assert payload["status"] == "ok"
    assert isinstance(payload["uptime_seconds"], float)
    assert payload["uptime_seconds"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payload["timestamp"])
    stamp = datetime.strptime(payload["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 3600


def test_port_zero_gives_the_real_port_once_started() -> None:
    health = HealthEndpoint(port=0)
    assert health.port == 0
    assert not health.running
    health.start()
    try:
        assert health.running
        assert health.port > 0
        assert health.url == f"http://127.0.0.1:{health.port}/health"
        assert get_json(health.url)[0] == 200
    finally:
        health.stop()
    assert not health.running


def test_stop_frees_the_port_and_may_be_called_twice() -> None:
    health = HealthEndpoint(port=0)
    health.start()
    port = health.port
    health.stop()
    health.stop()

    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # The same port can be served again at once.
    with HealthEndpoint(port=port) as again:
        assert get_json(again.url)[0] == 200


def test_it_refuses_to_start_twice(endpoint: HealthEndpoint) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        endpoint.start()


def test_it_raises_when_the_port_is_taken(endpoint: HealthEndpoint) -> None:
    with pytest.raises(OSError):
        HealthEndpoint(port=endpoint.port).start()


def test_the_callback_fields_are_merged_in() -> None:
    calls: list[int] = []

    def callback() -> Mapping[str, Any]:
        calls.append(1)
        return {"clients": 3, "messages_total": 42, "version": "1.2"}

    with HealthEndpoint(port=0, callback=callback) as health:
        code, payload = get_json(health.url)
        get_json(health.url)

    assert code == 200
    assert payload["status"] == "ok"
    assert payload["clients"] == 3
    assert payload["messages_total"] == 42
    assert payload["version"] == "1.2"
    assert "uptime_seconds" in payload and "timestamp" in payload
    assert len(calls) == 2  # asked on every request, never cached


def test_the_callback_may_override_the_status() -> None:
    with HealthEndpoint(port=0, callback=lambda: {"status": "degraded", "queue": 900}) as health:
        code, payload = get_json(health.url)

    assert code == 200
    assert payload["status"] == "degraded"
    assert payload["queue"] == 900


def test_values_json_cannot_encode_are_sent_as_text() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with HealthEndpoint(port=0, callback=lambda: {"last_save": when}) as health:
        code, payload = get_json(health.url)

    assert code == 200
    assert payload["last_save"] == str(when)


def test_it_answers_503_when_the_callback_raises() -> None:
    def broken() -> Mapping[str, Any]:
        raise ConnectionError("database unreachable")

    with HealthEndpoint(port=0, callback=broken) as health:
        code, payload = get_json(health.url)
        # The serving thread survives the exception.
        assert get_json(health.url)[0] == 503

    assert code == 503
    assert payload["status"] == "error"
    assert payload["error"] == "ConnectionError: database unreachable"
    assert "uptime_seconds" in payload and "timestamp" in payload


def test_it_answers_503_when_the_callback_returns_no_mapping() -> None:
    with HealthEndpoint(port=0, callback=lambda: ["ok"]) as health:  # type: ignore[arg-type,return-value]
        code, payload = get_json(health.url)

    assert code == 503
    assert payload["error"] == "TypeError: the health callback returned list, not a dict"


@pytest.mark.parametrize("path", ["/", "/healthz", "/health/extra", "/favicon.ico"])
def test_other_paths_are_404_json(endpoint: HealthEndpoint, path: str) -> None:
    code, payload = get_json(f"http://127.0.0.1:{endpoint.port}{path}")

    assert code == 404
    assert payload == {"status": "error", "error": f"not found: {path}"}


def test_a_query_string_is_ignored(endpoint: HealthEndpoint) -> None:
    assert get_json(endpoint.url + "?probe=1")[1]["status"] == "ok"


def test_head_answers_without_a_body(endpoint: HealthEndpoint) -> None:
    code, headers, body = fetch(endpoint.url, method="HEAD")

    assert code == 200
    assert int(headers["Content-Length"]) > 0
    assert body == b""


def test_a_custom_path_is_served_instead_of_health() -> None:
    with HealthEndpoint(port=0, path="/status") as health:
        assert health.url.endswith("/status")
        assert get_json(health.url)[0] == 200
        assert get_json(f"http://127.0.0.1:{health.port}/health")[0] == 404


def test_a_path_without_a_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="path='health' is invalid"):
        HealthEndpoint(path="health")


def test_requests_are_not_logged_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with HealthEndpoint(port=0) as health:
        get_json(health.url)
        get_json(f"http://127.0.0.1:{health.port}/missing")

    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_requests_can_be_logged_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="health_endpoint")
    with HealthEndpoint(port=0, log_requests=True) as health:
        get_json(health.url)

    assert any("GET /health" in record.getMessage() for record in caplog.records)


# -- example_server.py --------------------------------------------------------------------------


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next stdout line of ``proc``, or fail once ``timeout`` has passed."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no output from {proc.args!r} within {timeout} s")
    return proc.stdout.readline()


@pytest.fixture
def example_server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "example_server.py"), "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = read_line(proc, timeout=20)
        match = re.search(r"listening on (http://\S+/health) \(PID (\d+)\)", line)
        assert match, line
        assert int(match.group(2)) == proc.pid
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.slow
def test_example_server_answers_and_stops_on_sigterm(
    example_server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = example_server

    code, payload = get_json(url)
    assert code == 200
    assert payload["status"] == "ok"
    assert payload["service"] == "example-game-server"
    assert payload["pid"] == proc.pid
    for counter in ("clients", "peak_clients", "messages_total", "games_played"):
        assert isinstance(payload[counter], int)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout is not None
    assert "example server: stopped" in proc.stdout.read()


@pytest.mark.slow
def test_example_server_stops_on_sigint(example_server: tuple[subprocess.Popen[str], str]) -> None:
    proc, _ = example_server

    proc.send_signal(signal.SIGINT)

    assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_example_server_reports_degraded_after_sigusr1(
    example_server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = example_server

    os.kill(proc.pid, signal.SIGUSR1)
    assert "status is now degraded" in read_line(proc, timeout=10)
    assert get_json(url)[1]["status"] == "degraded"


@pytest.mark.slow
def test_example_server_says_so_when_the_port_is_taken(endpoint: HealthEndpoint) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "example_server.py"), "--port", str(endpoint.port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{endpoint.port}" in result.stderr


def test_uptime_grows_between_requests(endpoint: HealthEndpoint) -> None:
    first = get_json(endpoint.url)[1]["uptime_seconds"]
    deadline = time.monotonic() + 5
    while (later := get_json(endpoint.url)[1]["uptime_seconds"]) <= first:
        assert time.monotonic() < deadline, "uptime_seconds never grew"
    assert later > first
