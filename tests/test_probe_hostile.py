"""Hostile targets cannot make a check buffer without bound or burn CPU until its deadline
(issue 9 defect 1 and "hostile targets"). Each target streams its abuse until the client
closes; the check must end with a clean reason long before its 30 s timeout (a "timeout"
here means the client kept reading), having read a bounded amount, on both transports."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
from collections.abc import Callable

import pytest

from keepalive.probe.answer import MAX_WIRE
from keepalive.probe.checker import Checker, CheckResult
from keepalive.targets import Target
from tests.fakes.raw_server import ScriptedServer

INVALID = "invalid HTTP answer"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
# What the server may have written beyond what the client read: the kernel's socket buffers.
SLACK = 16 * 1024 * 1024


@pytest.fixture(params=[True, False], ids=["lean", "aiohttp"])
def lean(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def check_against(
    parts: list[bytes], endless: Callable[[int], bytes] | None, lean: bool
) -> tuple[CheckResult, int]:
    async def run() -> tuple[CheckResult, int]:
        async with ScriptedServer(parts, endless=endless, hold_open=True) as server:
            checker = Checker(lean=lean)
            try:
                result = await checker.check(
                    Target(
                        name="t",
                        url=server.url(),
                        interval=1.0,
                        failure_threshold=1,
                        success_threshold=1,
                        timeout=30.0,
                    )
                )
            finally:
                await checker.close()
        return result, server.sent

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("parts", "endless"),
    [
        # The last chunk, then trailer fields forever (issue 9 defect 1: 144 MB, 11.5 s CPU).
        ([CHUNKED_HEAD + b"10\r\n" + b'{"status": "ok"}' + b"\r\n0\r\n"], lambda i: b"X-Trailer: v\r\n" * 64),
        # Header fields forever, before the head ends.
        ([b"HTTP/1.1 200 OK\r\n"], lambda i: b"X-Header: v\r\n" * 64),
        # One header line that never ends.
        ([b"HTTP/1.1 200 OK\r\nX-Long: "], lambda i: b"v" * 4096),
        # A status line that never ends.
        ([b"HTTP/1.1 200 "], lambda i: b"O" * 4096),
        # 100 Continue, forever.
        ([], lambda i: b"HTTP/1.1 100 Continue\r\n\r\n" * 16),
        # 1-byte chunks, forever.
        ([CHUNKED_HEAD], lambda i: b"1\r\nx\r\n" * 256),
        # A chunk-size line whose extension never ends.
        ([CHUNKED_HEAD + b"10;ext="], lambda i: b"a" * 4096),
    ],
    ids=[
        "endless-trailers",
        "endless-headers",
        "endless-header-line",
        "endless-status-line",
        "endless-100-continue",
        "endless-1-byte-chunks",
        "endless-chunk-extension",
    ],
)
def test_an_endless_answer_is_cut_off_as_invalid(
    parts: list[bytes], endless: Callable[[int], bytes], lean: bool, request: pytest.FixtureRequest
) -> None:
    if not lean and "chunk-extension" in request.node.name:
        # aiohttp gives no hook between the socket and llhttp, which skips extension bytes
        # without a callback or a limit: that check ends at its deadline ("timeout"), its
        # memory flat. The lean client (every plain-http check by default) stops at MAX_WIRE.
        pytest.skip("aiohttp reads an endless chunk extension until the deadline")
    result, sent = check_against(parts, endless, lean)
    assert result.reason == INVALID
    assert sent < MAX_WIRE + SLACK


def peak_memory_of_check(
    parts: list[bytes], endless: Callable[[int], bytes] | None, lean: bool
) -> tuple[CheckResult, int]:
    tracemalloc.start()
    try:
        result, _ = check_against(parts, endless, lean)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_an_endless_body_stops_at_one_mebibyte(lean: bool) -> None:
    result, peak = peak_memory_of_check([b"HTTP/1.1 200 OK\r\n\r\n"], lambda i: b"x" * 65536, lean)
    assert result.reason == "body larger than 1 MiB"
    assert peak < 16 * 1024 * 1024


def test_a_gzip_bomb_inflates_no_further_than_one_mebibyte(lean: bool) -> None:
    # 64 MiB of zeros compress to ~64 KiB; inflating it whole would cost 64 MiB per check.
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), mtime=0)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    result, peak = peak_memory_of_check([head + bomb], None, lean)
    assert result.reason == "body larger than 1 MiB"
    assert peak < 16 * 1024 * 1024
