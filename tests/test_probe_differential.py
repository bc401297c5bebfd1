"""One answer, one verdict: the same raw bytes through both transports (issue 8 item 2).

Each case is served byte for byte by a raw loopback server and checked through the lean
transport (llhttp) and through aiohttp; both must give exactly the expected reason. Where
aiohttp alone would differ, the aiohttp transport maps or bounds it (see its docstring):
endless interim answers (aiohttp reads them until the deadline), compressed bodies (inflated
by the judge, within 1 MiB), 1-byte chunks (cut at MAX_CHUNKS).
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from dataclasses import dataclass, field

import pytest

from keepalive.probe.answer import MAX_CHUNKS, MAX_HEADERS, MAX_INTERIM
from keepalive.probe.checker import Checker
from keepalive.targets import Target
from tests.fakes.raw_server import ScriptedServer

OK = b'{"status": "ok"}'
INVALID = "invalid HTTP answer"


def head(*lines: bytes, status: bytes = b"HTTP/1.1 200 OK", end: bytes = b"\r\n") -> bytes:
    return end.join((status, *lines)) + end + end


def length(body: bytes, *extra: bytes, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return head(b"Content-Length: %d" % len(body), *extra, status=status) + body


def chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return head(b"Transfer-Encoding: chunked") + framed + b"0\r\n" + trailer + b"\r\n"


@dataclass(frozen=True)
class Case:
    parts: list[bytes]
    reason: str | None
    hold_open: bool = True
    notes: dict[str, str] = field(default_factory=dict)


GZIP = gzip.compress(OK, mtime=0)
RAW_DEFLATE = zlib.compress(OK)[2:-4]
DEEP = b'{"status": "ok", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

CASES: dict[str, Case] = {
    "content-length": Case([length(OK)], None),
    "split-reads": Case([length(OK)[i : i + 3] for i in range(0, len(length(OK)), 3)], None),
    "bare-lf": Case([head(b"Content-Length: 16", end=b"\n") + OK], None),
    "obs-fold": Case([head(b"X-Folded: one", b"  two", b"Content-Length: 16") + OK], None),
    # A second answer in the same read is ignored (as aiohttp does): its status is not the verdict.
    "second-answer-500-same-read": Case([length(OK) + length(b"", status=b"HTTP/1.1 500 Bad")], None),
    # Trailers are not read (aiohttp never looks into them): a NUL there changes nothing.
    "nul-in-trailer-value": Case([chunked(OK, trailer=b"X-Nul: a\0b\r\n")], None),
    "no-reason-phrase": Case([head(b"Content-Length: 16", status=b"HTTP/1.1 200") + OK], None),
    "duplicate-equal-length": Case([head(b"Content-Length: 16", b"Content-Length: 16") + OK], INVALID),
    "duplicate-different-length": Case([head(b"Content-Length: 16", b"Content-Length: 17") + OK], INVALID),
    "length-list": Case([head(b"Content-Length: 16, 16") + OK], INVALID),
    # U+00B2 as one latin-1 byte: str.isdigit() says yes, int() says no.
    "superscript-length": Case([head(b"Content-Length: \xb2") + OK], INVALID),
    "superscript-length-utf8": Case([head("Content-Length: ²".encode()) + OK], INVALID),
    "negative-length": Case([head(b"Content-Length: -1") + OK], INVALID),
    "length-and-chunked": Case(
        [head(b"Content-Length: 16", b"Transfer-Encoding: chunked") + b"10\r\n" + OK + b"\r\n0\r\n\r\n"],
        INVALID,
    ),
    "chunk-extension-and-trailer": Case(
        [
            head(b"Transfer-Encoding: chunked")
            + b"7;a=b\r\n"
            + OK[:7]
            + b"\r\n9\r\n"
            + OK[7:]
            + b"\r\n0\r\nX-T: 1\r\n\r\n"
        ],
        None,
    ),
    "chunked-split": Case(
        [chunked(OK[:5], OK[5:])[i : i + 4] for i in range(0, len(chunked(OK[:5], OK[5:])), 4)], None
    ),
    "bad-chunk-size": Case(
        [head(b"Transfer-Encoding: chunked") + b"zz\r\n" + OK + b"\r\n0\r\n\r\n"], INVALID
    ),
    "100-continue": Case([head(status=b"HTTP/1.1 100 Continue"), length(OK)], None),
    "103-early-hints": Case(
        [head(b"Link: </a.css>; rel=preload", status=b"HTTP/1.1 103 Early Hints"), length(OK)], None
    ),
    "endless-interim": Case(
        [head(status=b"HTTP/1.1 100 Continue")] * (MAX_INTERIM + 2) + [length(OK)], INVALID
    ),
    "gzip": Case([length(GZIP, b"Content-Encoding: gzip")], None),
    "raw-deflate": Case([length(RAW_DEFLATE, b"Content-Encoding: deflate")], None),
    "bad-gzip": Case([length(b"not gzip at all", b"Content-Encoding: gzip")], INVALID),
    "four-digit-status": Case([head(b"Content-Length: 16", status=b"HTTP/1.1 2000 OK") + OK], INVALID),
    "http2-status-line": Case([head(b"Content-Length: 16", status=b"HTTP/2 200") + OK], INVALID),
    "not-http": Case([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], INVALID, hold_open=False),
    "closed-silently": Case([], "connection reset", hold_open=False),
    "truncated-length": Case([head(b"Content-Length: 100") + OK], "incomplete body", hold_open=False),
    "truncated-chunked": Case(
        [head(b"Transfer-Encoding: chunked") + b"10\r\n" + OK], "incomplete body", hold_open=False
    ),
    "close-delimited-1.0": Case([head(status=b"HTTP/1.0 200 OK"), OK], None, hold_open=False),
    "close-delimited-1.1": Case([head(b"Content-Type: application/json"), OK], None, hold_open=False),
    "http-503": Case([length(b'{"status": "down"}', status=b"HTTP/1.1 503 Unavailable")], "HTTP 503"),
    "no-content-204": Case([head(status=b"HTTP/1.1 204 No Content")], "invalid JSON"),
    "header-without-colon": Case([head(b"NoColonHere", b"Content-Length: 16") + OK], INVALID),
    "too-many-headers": Case(
        [head(*(b"X-H%d: v" % i for i in range(MAX_HEADERS + 1)), b"Content-Length: 16") + OK], INVALID
    ),
    "header-too-long": Case([head(b"X-Long: " + b"v" * 9000, b"Content-Length: 16") + OK], INVALID),
    "endless-trailers": Case(
        [head(b"Transfer-Encoding: chunked") + b"10\r\n" + OK + b"\r\n0\r\n"]
        + [b"X-T%d: v\r\n" % i for i in range(MAX_HEADERS + 1)],
        INVALID,
    ),
    "one-byte-chunks": Case([chunked(*([b" "] * (MAX_CHUNKS + 1)), OK)], INVALID),
    "declared-too-large": Case([head(b"Content-Length: 2000000")], "body larger than 1 MiB"),
    "deeply-nested-json": Case([length(DEEP)], "invalid JSON"),
    # Found by feeding both clients more answers: each differed before the lean client matched.
    "nul-in-header-value": Case([head(b"X-A: a\x00b", b"Content-Length: 16") + OK], INVALID),
    "chunked-not-the-last-coding": Case(
        [head(b"Transfer-Encoding: chunked, gzip") + OK], None, hold_open=False
    ),
    "bytes-after-the-body": Case([head(b"Content-Length: 16") + OK + b"garbage"], INVALID),
    "a-second-answer-after-the-body": Case([length(OK) + length(b"{}")], None),
    "crlf-after-the-body": Case([length(OK) + b"\r\n"], None),
    "header-name-and-value-over-8190": Case(
        [head(b"X-L: " + b"v" * 8190, b"Content-Length: 16") + OK], INVALID
    ),
    "header-line-of-8190": Case([head(b"X-L: " + b"v" * 8185, b"Content-Length: 16") + OK], None),
    "reason-phrase-over-8190": Case(
        [head(b"Content-Length: 16", status=b"HTTP/1.1 200 " + b"O" * 9000) + OK], INVALID
    ),
    # Agreed from the start; kept so they stay agreed.
    "lowercase-version": Case([head(b"Content-Length: 16", status=b"http/1.1 200 OK") + OK], INVALID),
    "status-099": Case([head(b"Content-Length: 16", status=b"HTTP/1.1 099 X") + OK], "HTTP 99"),
    "status-600": Case([head(b"Content-Length: 16", status=b"HTTP/1.1 600 X") + OK], "HTTP 600"),
    "leading-zero-length": Case([head(b"Content-Length: 016") + OK], None),
    "space-before-colon": Case([head(b"Content-Length : 16") + OK], None),
    "cr-only-line-ends": Case([b"HTTP/1.1 200 OK\rContent-Length: 16\r\r" + OK], INVALID),
    "bare-lf-chunk-lines": Case(
        [head(b"Transfer-Encoding: chunked", end=b"\n") + b"10\n" + OK + b"\n0\n\n"], INVALID
    ),
    "128-header-fields": Case(
        [head(*(b"X-H%d: v" % i for i in range(MAX_HEADERS - 1)), b"Content-Length: 16") + OK], None
    ),
    "redirect-without-location": Case([head(b"Content-Length: 0", status=b"HTTP/1.1 302 Found")], "HTTP 302"),
    "switching-protocols": Case(
        [head(b"Upgrade: h2c", b"Connection: Upgrade", status=b"HTTP/1.1 101 Switching")], "HTTP 101"
    ),
}


def run_both(case: Case) -> tuple[str | None, str | None]:
    async def run() -> tuple[str | None, str | None]:
        async with ScriptedServer(case.parts, hold_open=case.hold_open) as server:
            target = Target(
                name="t",
                url=server.url(),
                interval=1.0,
                failure_threshold=1,
                success_threshold=1,
                timeout=20.0,
            )
            verdicts: list[str | None] = []
            for lean in (True, False):
                checker = Checker(lean=lean)
                try:
                    verdicts.append((await checker.check(target)).reason)
                finally:
                    await checker.close()
            return verdicts[0], verdicts[1]

    return asyncio.run(run())


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", list(CASES))
def test_both_transports_give_the_same_verdict(name: str) -> None:
    case = CASES[name]
    lean, aiohttp = run_both(case)
    assert (lean, aiohttp) == (case.reason, case.reason)


def test_a_malformed_length_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # The hand-made parser raised inside data_received: asyncio logged a traceback per check.
    with caplog.at_level("DEBUG", logger="asyncio"):
        lean, aiohttp = run_both(CASES["superscript-length"])
    assert (lean, aiohttp) == (INVALID, INVALID)
    assert [record.getMessage() for record in caplog.records if record.levelname == "ERROR"] == []
