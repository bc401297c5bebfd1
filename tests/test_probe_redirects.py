"""What a redirect may and may not do (issue 9 "Redirects anywhere"): follow_redirects per
target, never onto the monitor's own endpoint, never another host's body text in a reason,
only to http(s); and no URL password in any reason (issue 9 "URL passwords")."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import pytest

from keepalive.probe.checker import Checker, CheckResult
from keepalive.probe.http_probe import TO_SELF
from keepalive.probe.resolver import AddrInfo, Resolver
from keepalive.targets import Target
from tests.fakes.raw_server import ScriptedServer
from tests.fakes.targets import TargetServer, closed_port

OK_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"status": "ok"}'


def target(url: str, **options: Any) -> Target:
    options.setdefault("timeout", 5.0)
    return Target(name="t", url=url, interval=1.0, failure_threshold=1, success_threshold=1, **options)


def redirect_to(location: str, status: bytes = b"302 Found") -> bytes:
    return b"HTTP/1.1 %s\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location.encode())


@pytest.fixture(params=[True, False], ids=["lean", "aiohttp"])
def lean(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def run_check(
    first: list[bytes], then: list[bytes] | None, url_of_second: str, lean: bool, **checker_options: Any
) -> CheckResult:
    """A target answering ``first``; ``{second}`` in it is replaced by the URL of a second
    server answering ``then`` (``url_of_second`` formats it: host and port)."""

    async def run() -> CheckResult:
        async with ScriptedServer(then or [OK_ANSWER]) as second:
            location = url_of_second.format(port=second.port)
            parts = [part.replace(b"{second}", location.encode()) for part in first]
            async with ScriptedServer(parts) as server:
                own = checker_options.pop("own", None)
                if own is not None:
                    checker_options["own_endpoints"] = [(own, second.port)]
                checker = Checker(lean=lean, **checker_options)
                try:
                    return await checker.check(target(server.url()))
                finally:
                    await checker.close()

    return asyncio.run(run())


def test_a_redirect_is_not_followed_when_follow_redirects_is_false(lean: bool) -> None:
    with TargetServer() as server:
        server.set_mode("end", "ok")
        server.set_mode("moved", "redirect", location=server.url("end"))
        outcomes = []
        for follow in (True, False):

            async def run(follow: bool = follow) -> CheckResult:
                checker = Checker(lean=lean)
                try:
                    return await checker.check(target(server.url("moved"), follow_redirects=follow))
                finally:
                    await checker.close()

            outcomes.append(asyncio.run(run()).reason)
        assert outcomes == [None, "HTTP 302"]
        assert server.count("end") == 1


@pytest.mark.parametrize(
    ("location", "own_host"),
    [
        ("http://127.0.0.1:{port}/health", "127.0.0.1"),  # the monitor's address itself
        ("http://localhost:{port}/health", "0.0.0.0"),  # a loopback name, monitor on all addresses
        ("http://127.0.0.1:{port}/health", "localhost"),
    ],
)
def test_a_redirect_onto_the_monitor_itself_fails(location: str, own_host: str, lean: bool) -> None:
    result = run_check([redirect_to("{second}")], None, location, lean, own=own_host)
    assert result.reason == TO_SELF


def test_a_name_that_resolves_to_the_monitor_is_caught_at_the_connection(lean: bool) -> None:
    # The URL names another host; only the connection's peer shows it is the monitor.
    def lookup(host: str, port: int) -> Sequence[AddrInfo]:
        if host != "innocent.test":
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    result = run_check(
        [redirect_to("{second}")],
        None,
        "http://innocent.test:{port}/health",
        lean,
        own="0.0.0.0",
        resolver=Resolver(lookup),
    )
    assert result.reason == TO_SELF


def test_without_own_endpoints_the_same_redirect_passes(lean: bool) -> None:
    result = run_check([redirect_to("{second}")], None, "http://127.0.0.1:{port}/health", lean)
    assert result.ok, result.reason


def test_another_hosts_body_text_never_reaches_the_reason(lean: bool) -> None:
    secret = b'{"status": "internal db password is hunter2"}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(secret), secret)
    other_host = run_check([redirect_to("{second}")], [answer], "http://localhost:{port}/x", lean)
    assert other_host.reason == "unexpected status value (answer from another host)"
    # From the target's own host the value is shown, as always.
    same_host = run_check([redirect_to("{second}")], [answer], "http://127.0.0.1:{port}/x", lean)
    assert same_host.reason == 'status is "internal db password is hunter2"'


@pytest.mark.parametrize(
    "location", ["ftp://example.test/health", "javascript:alert(1)", "http://[bad/x", "http://host:99999/x"]
)
def test_a_redirect_to_anything_but_http_is_invalid(location: str, lean: bool) -> None:
    result = run_check([redirect_to(location)], None, "unused", lean)
    assert result.reason == "invalid redirect"


def test_a_url_password_never_reaches_a_reason(lean: bool) -> None:
    async def run() -> list[str | None]:
        async with ScriptedServer([redirect_to(f"http://user:hunter2@127.0.0.1:{closed_port()}/x")]) as hop:
            urls = [
                f"http://user:hunter2@127.0.0.1:{closed_port()}/health",
                "http://user:hunter2@missing.invalid/health",
                hop.url().replace("http://", "http://user:hunter2@"),
            ]
            checker = Checker(lean=lean)
            try:
                return [(await checker.check(target(url))).reason for url in urls]
            finally:
                await checker.close()

    reasons = asyncio.run(run())
    assert reasons == ["connection refused", "DNS lookup failed", "connection refused"]
