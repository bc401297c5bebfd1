"""The pure judge: an Answer in, a reason or None out, no sockets."""

from __future__ import annotations

import gzip
import zlib

import pytest

from keepalive.probe.answer import MAX_BODY, Answer
from keepalive.probe.judge import judge, judge_body, printable, slow_reason

OK = b'{"status": "ok"}'


def answer(body: bytes = OK, status: int = 200, **headers: str) -> Answer:
    return Answer(status, {name.replace("_", "-"): value for name, value in headers.items()}, body)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (answer(), None),
        (answer(status=204, body=b""), "invalid JSON"),
        (answer(status=503), "HTTP 503"),
        (answer(status=301), "HTTP 301"),
        (answer(b'{"status": "degraded"}'), 'status is "degraded"'),
        (answer(b'{"status": null}'), "status is null"),
        (answer(b'["ok"]'), "body is not a JSON object"),
        (answer(b'{"state": "ok"}'), 'no "status" field'),
        (answer(b"[" * 100_000 + b"]" * 100_000), "invalid JSON"),
        (answer(b'{"a": ' * 100_000 + b"1" + b"}" * 100_000), "invalid JSON"),
        (answer(gzip.compress(OK), content_encoding="gzip"), None),
        (answer(gzip.compress(OK), content_encoding=" GZIP "), None),
        (answer(zlib.compress(OK), content_encoding="deflate"), None),
        (answer(zlib.compress(OK)[2:-4], content_encoding="deflate"), None),
        (answer(b"not compressed", content_encoding="gzip"), "invalid HTTP answer"),
        (answer(gzip.compress(b" " * (MAX_BODY + 1)), content_encoding="gzip"), "body larger than 1 MiB"),
        (answer(gzip.compress(b" " * MAX_BODY + OK), content_encoding="gzip"), "body larger than 1 MiB"),
        # A coding we did not ask for and do not know: the body is read as it is.
        (answer(OK, content_encoding="utf-8"), None),
    ],
    ids=[
        "ok",
        "204",
        "503",
        "301",
        "degraded",
        "null",
        "array",
        "no-status",
        "deep-array",
        "deep-object",
        "gzip",
        "gzip-spaced",
        "zlib",
        "raw-deflate",
        "bad-gzip",
        "gzip-bomb",
        "gzip-just-over",
        "unknown-coding",
    ],
)
def test_judge(given: Answer, reason: str | None) -> None:
    assert judge(given, ("ok",)) == reason


def test_a_foreign_answer_never_shows_its_status_text() -> None:
    body = b'{"status": "secret <b>text</b>"}'
    assert judge(answer(body), ("ok",), foreign=True) == "unexpected status value (answer from another host)"
    assert judge(answer(body), ("ok",)) == 'status is "secret <b>text</b>"'
    # Other reasons carry no body text, so they stay as they are.
    assert judge(answer(b"[]"), ("ok",), foreign=True) == "body is not a JSON object"


def test_the_status_value_is_shown_printable_and_short() -> None:
    assert judge_body(b'{"status": "a\\nb\\u0007c\\ud800"}', ("ok",)) == 'status is "a b c\ufffd"'
    assert printable("x\x7fy") == "x y"


def test_slow_reason_names_both_figures() -> None:
    assert slow_reason(950.4, 800.0) == "slow: 950 ms > 800 ms"
    assert slow_reason(799.0, 800.0) is None
    assert slow_reason(5000.0, None) is None
