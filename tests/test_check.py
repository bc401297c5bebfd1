"""The check against real loopback targets: every reason of SPEC section 5, and connections.

Every reason is produced twice: through the lean HTTP/1.1 client (plain-http targets on a
fresh connection, the default) and through aiohttp (https, reused connections)."""

from __future__ import annotations

import asyncio
import gc
import gzip
from collections.abc import Iterator
from typing import Any

import pytest

from keepalive.probe import lean as http1
from keepalive.probe.checker import Checker, CheckResult, judge_body
from keepalive.targets import Target
from tests.fakes.targets import TargetServer, closed_port


def target(url: str, **options: Any) -> Target:
    options.setdefault("timeout", 1.0)
    return Target(name="t", url=url, interval=1.0, failure_threshold=1, success_threshold=1, **options)


def check(*targets: Target, lean: bool = True) -> list[CheckResult]:
    async def run() -> list[CheckResult]:
        checker = Checker(lean=lean)
        try:
            return [await checker.check(t) for t in targets]
        finally:
            await checker.close()

    return asyncio.run(run())


@pytest.fixture(params=[True, False], ids=["lean", "aiohttp"])
def lean(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


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
    server: TargetServer, lean: bool, mode: str, options: dict[str, Any], reason: str
) -> None:
    name = f"{mode}-{len(options)}"
    server.set_mode(name, mode, **options)
    (result,) = check(target(server.url(name)), lean=lean)
    assert not result.ok
    assert result.reason == reason


def test_a_healthy_target_passes_with_its_latency(server: TargetServer, lean: bool) -> None:
    server.set_mode("fine", "ok")
    (result,) = check(target(server.url("fine")), lean=lean)
    assert result.ok
    assert result.reason is None
    assert result.latency_ms is not None and result.latency_ms > 0


def test_a_redirect_to_a_healthy_target_is_followed(server: TargetServer, lean: bool) -> None:
    server.set_mode("fine2", "ok")
    server.set_mode("moved", "redirect", location=server.url("fine2"))
    (result,) = check(target(server.url("moved")), lean=lean)
    assert result.ok


def test_a_closed_port_is_connection_refused(lean: bool) -> None:
    (result,) = check(target(f"http://127.0.0.1:{closed_port()}/health"), lean=lean)
    assert result.reason == "connection refused"


def test_an_unresolvable_host_is_a_dns_failure(lean: bool) -> None:
    # .invalid is reserved and never resolves (RFC 6761); no network is needed to fail.
    (result,) = check(target("http://no-such-host.invalid/health", timeout=10.0), lean=lean)
    assert result.reason == "DNS lookup failed"


def test_tls_to_a_plain_http_server_is_a_tls_error(server: TargetServer) -> None:
    server.set_mode("plain", "ok")
    (result,) = check(target(server.url("plain").replace("http://", "https://")))
    assert result.reason == "TLS error"


def test_an_answer_slower_than_max_latency_fails_with_both_figures(server: TargetServer, lean: bool) -> None:
    server.set_mode("sluggish", "slow", delay=0.3)
    (result,) = check(target(server.url("sluggish"), max_latency_ms=100.0), lean=lean)
    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith("slow: ") and result.reason.endswith(" ms > 100 ms")


def test_expect_status_accepts_any_listed_value(server: TargetServer, lean: bool) -> None:
    server.set_mode("healthy", "ok", payload={"status": "healthy"})
    ok, wrong = check(
        target(server.url("healthy"), expect_status=("ok", "healthy")),
        target(server.url("healthy")),
        lean=lean,
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


# -- the wire, byte by byte: framings and oddities a real server may send ------------------------


def check_scripted(parts: list[bytes], *, hold_open: bool = False, lean: bool = True) -> CheckResult:
    """Check a loopback server that answers every request with ``parts`` (written one by one,
    so the client sees them in separate reads), then closes, or with ``hold_open`` keeps the
    connection until the client closes it (a server that ignores ``Connection: close``)."""

    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            for part in parts:
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.001)
            if hold_open:
                await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def run() -> CheckResult:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        checker = Checker(lean=lean)
        try:
            return await checker.check(target(f"http://127.0.0.1:{port}/health", timeout=5.0))
        finally:
            await checker.close()
            server.close()
            # The client has closed its end by now: let each handler see that and finish.
            if handlers:
                await asyncio.wait(handlers, timeout=5.0)

    return asyncio.run(run())


OK_BODY = b'{"status": "ok"}'
OK_GZIP = gzip.compress(OK_BODY, mtime=0)


def pieces(data: bytes, size: int = 3) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("parts", "hold_open", "reason"),
    [
        # Content-Length framing is complete without waiting for the server to close.
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + OK_BODY], True, None),
        # A head and body split across many reads.
        (pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + OK_BODY), False, None),
        # Chunked, with a chunk extension, split across reads, the connection held open.
        (
            pieces(
                b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"statu\r\n9;x=1\r\ns": "ok"}\r\n0\r\n\r\n'
            ),
            True,
            None,
        ),
        # Chunked with a trailer field.
        (
            [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n"
                + OK_BODY
                + b"\r\n0\r\nX-T: 1\r\n\r\n"
            ],
            True,
            None,
        ),
        # No length at all: the body ends with the connection (HTTP/1.0 style).
        ([b"HTTP/1.0 200 OK\r\n\r\n", OK_BODY], False, None),
        # An interim 100 Continue before the real answer.
        (
            [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + OK_BODY],
            True,
            None,
        ),
        # Compressed although we did not ask for it.
        (
            [
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(OK_GZIP), OK_GZIP)
            ],
            True,
            None,
        ),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", OK_BODY], False, "incomplete body"),
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + OK_BODY],
            False,
            "incomplete body",
        ),
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n", b"x" * 0x200000],
            True,
            "body larger than 1 MiB",
        ),
        ([b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"status": "no"}'], True, 'status is "no"'),
        ([b"HTTP/1.1 404 Not Found\r\n\r\n"], True, "HTTP 404"),
        ([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], False, "invalid HTTP answer"),
        ([], False, "connection reset"),
    ],
    ids=[
        "length-held-open",
        "split-reads",
        "chunked",
        "chunked-trailer",
        "until-close",
        "100-continue",
        "gzip",
        "short-length",
        "short-chunked",
        "huge-chunk",
        "wrong-status",
        "404-no-body",
        "not-http",
        "closed-silently",
    ],
)
def test_the_lean_client_reads_every_framing(
    parts: list[bytes], hold_open: bool, reason: str | None, lean: bool
) -> None:
    result = check_scripted(parts, hold_open=hold_open, lean=lean)
    assert result.reason == reason


@pytest.mark.parametrize("mode", ["ok", "http500", "bad_json", "huge", "reset"])
def test_a_lean_exchange_is_freed_without_the_cyclic_collector(server: TargetServer, mode: str) -> None:
    """The parser and its protocol refer to each other; left as a cycle, every check's
    exchange waited for the cyclic collector (a cost per check, and memory between
    collections). With the collector off, none may outlive its check."""

    def alive() -> int:
        return sum(1 for obj in gc.get_objects() if isinstance(obj, http1._Exchange))

    name = f"freed-{mode}"
    server.set_mode(name, mode)
    gc.collect()
    before = alive()
    gc.disable()
    try:
        results = check(*[target(server.url(name)) for _ in range(5)])
        assert alive() == before
    finally:
        gc.enable()
    assert len(results) == 5 and all(r.ok is (mode == "ok") for r in results)


def test_five_redirects_are_followed_and_a_sixth_is_too_many(server: TargetServer, lean: bool) -> None:
    server.set_mode("end", "ok")
    for chain, hops in (("five", 5), ("six", 6)):
        for hop in range(1, hops + 1):
            following = server.url(f"{chain}{hop + 1}") if hop < hops else server.url("end")
            server.set_mode(f"{chain}{hop}", "redirect", location=following)
    five, six = check(target(server.url("five1")), target(server.url("six1")), lean=lean)
    assert five.ok, five.reason
    assert six.reason == "too many redirects"


def test_a_relative_redirect_is_followed(server: TargetServer, lean: bool) -> None:
    server.set_mode("rel-end", "ok")
    server.set_mode("rel", "redirect", location="/rel-end")
    (result,) = check(target(server.url("rel")), lean=lean)
    assert result.ok, result.reason


def test_a_redirect_to_https_is_followed_over_tls(server: TargetServer) -> None:
    # The lean client hands https over to aiohttp: a plain server behind it is a TLS error.
    server.set_mode("secure", "redirect", location=server.url("plain").replace("http://", "https://"))
    (result,) = check(target(server.url("secure")))
    assert result.reason == "TLS error"


def test_a_host_name_is_resolved(server: TargetServer, lean: bool) -> None:
    server.set_mode("named", "ok")
    url = server.url("named").replace("127.0.0.1", "localhost")
    first, second = check(target(url), target(url), lean=lean)
    assert first.ok and second.ok, (first.reason, second.reason)


@pytest.mark.parametrize(
    ("url", "request_head"),
    [
        ("http://127.0.0.1:8080/health", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
        ("http://example.test/health?full=1#top", b"GET /health?full=1 HTTP/1.1\r\nHost: example.test\r\n"),
        ("http://example.test:80", b"GET / HTTP/1.1\r\nHost: example.test\r\n"),
        ("http://[::1]:5004/h", b"GET /h HTTP/1.1\r\nHost: [::1]:5004\r\n"),
    ],
)
def test_the_lean_request_names_the_host_and_path(url: str, request_head: bytes) -> None:
    plan = http1.plan_for(url, "ua")
    assert plan is not None
    assert plan.request.startswith(request_head)
    assert b"Connection: close\r\n" in plan.request and plan.request.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.test/health",
        "http://user:secret@example.test/health",
        "http://example.test/a path",
        "http://example.test/caf\u00e9",
        "http://b\u00fccher.example/health",
    ],
)
def test_urls_the_lean_client_leaves_to_aiohttp(url: str) -> None:
    assert http1.plan_for(url, "ua") is None
