"""The check against real loopback targets: every reason of SPEC section 5, and connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from keepalive.check import Checker, CheckResult, judge_body
from keepalive.targets import Target
from tests.fakes.targets import TargetServer, closed_port


def target(url: str, **options: Any) -> Target:
    options.setdefault("timeout", 1.0)
    return Target(name="t", url=url, interval=1.0, failure_threshold=1, success_threshold=1, **options)


def check(*targets: Target) -> list[CheckResult]:
    async def run() -> list[CheckResult]:
        checker = Checker()
        try:
            return [await checker.check(t) for t in targets]
        finally:
            await checker.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def server() -> Iterator[TargetServer]:
    with TargetServer() as srv:
        yield srv


@pytest.mark.parametrize(
    ("mode", "options", "reason"),
    [
        ("http500", {}, "HTTP 500"),
        ("http503", {}, "HTTP 503"),
        ("bad_json", {}, "invalid JSON"),
        ("not_object", {}, "body is not a JSON object"),
        ("degraded", {}, 'status is "degraded"'),
        ("missing_status", {}, 'no "status" field'),
        ("slow", {"delay": 5}, "timeout"),
        ("hang", {}, "timeout"),
        # A body that drips forever cannot stretch the check past its overall deadline.
        ("drip", {"interval": 0.05}, "timeout"),
        ("huge", {}, "body larger than 1 MiB"),
        ("huge", {"declare_length": True}, "body larger than 1 MiB"),
        ("redirect_loop", {}, "too many redirects"),
        ("reset", {}, "connection reset"),
    ],
)
def test_each_misbehaviour_gives_its_reason(
    server: TargetServer, mode: str, options: dict[str, Any], reason: str
) -> None:
    name = f"{mode}-{len(options)}"
    server.set_mode(name, mode, **options)
    (result,) = check(target(server.url(name)))
    assert not result.ok
    assert result.reason == reason


def test_a_healthy_target_passes_with_its_latency(server: TargetServer) -> None:
    server.set_mode("fine", "ok")
    (result,) = check(target(server.url("fine")))
    assert result.ok
    assert result.reason is None
    assert result.latency_ms is not None and result.latency_ms > 0


def test_a_redirect_to_a_healthy_target_is_followed(server: TargetServer) -> None:
    server.set_mode("fine2", "ok")
    server.set_mode("moved", "redirect", location=server.url("fine2"))
    (result,) = check(target(server.url("moved")))
    assert result.ok


def test_a_closed_port_is_connection_refused() -> None:
    (result,) = check(target(f"http://127.0.0.1:{closed_port()}/health"))
    assert result.reason == "connection refused"


def test_an_unresolvable_host_is_a_dns_failure() -> None:
    # .invalid is reserved and never resolves (RFC 6761); no network is needed to fail.
    (result,) = check(target("http://no-such-host.invalid/health", timeout=10.0))
    assert result.reason == "DNS lookup failed"


def test_tls_to_a_plain_http_server_is_a_tls_error(server: TargetServer) -> None:
    server.set_mode("plain", "ok")
    (result,) = check(target(server.url("plain").replace("http://", "https://")))
    assert result.reason == "TLS error"


def test_an_answer_slower_than_max_latency_fails_with_both_figures(server: TargetServer) -> None:
    server.set_mode("sluggish", "slow", delay=0.3)
    (result,) = check(target(server.url("sluggish"), max_latency_ms=100.0))
    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith("slow: ") and result.reason.endswith(" ms > 100 ms")


def test_expect_status_accepts_any_listed_value(server: TargetServer) -> None:
    server.set_mode("healthy", "ok", payload={"status": "healthy"})
    ok, wrong = check(
        target(server.url("healthy"), expect_status=("ok", "healthy")),
        target(server.url("healthy")),
    )
    assert ok.ok
    assert wrong.reason == 'status is "healthy"'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"status": "ok"}', None),
        (b'{"status": 3}', "status is 3"),
        (b'{"status": "' + b"x" * 100 + b'"}', 'status is "' + "x" * 57 + '..."'),
        (b"\xff\xfe", "invalid JSON"),
        (b"", "invalid JSON"),
    ],
)
def test_judge_body(body: bytes, reason: str | None) -> None:
    assert judge_body(body, ("ok",)) == reason


class ConnectionCounter:
    """A keep-alive capable HTTP/1.1 server that counts the TCP connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        body = b'{"status": "ok"}'
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(("reuse", "connections"), [(False, 3), (True, 1)])
def test_each_check_opens_a_fresh_connection_unless_reuse_is_set(reuse: bool, connections: int) -> None:
    async def run() -> int:
        counter = ConnectionCounter()
        server = await asyncio.start_server(counter.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        checker = Checker()
        try:
            for _ in range(3):
                result = await checker.check(
                    target(f"http://127.0.0.1:{port}/health", reuse_connection=reuse)
                )
                assert result.ok, result.reason
        finally:
            await checker.close()
            server.close()
            await server.wait_closed()
        return counter.connections

    assert asyncio.run(run()) == connections
