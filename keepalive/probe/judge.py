"""The pure judge of an answer (SPEC section 5): status, JSON body, expected status value.

No I/O: an ``Answer`` in, a reason or None out, so every verdict is testable without sockets.
"""

from __future__ import annotations

import json
import zlib

from keepalive.probe.answer import INVALID, MAX_BODY, TOO_LARGE, Answer
from keepalive.probe.conditions import Condition, conditions_failure


def printable(text: str) -> str:
    """``text`` safe to log, store and send: control characters (C0, DEL and C1, whose U+009B
    is a terminal's CSI) become spaces and lone surrogates (legal in JSON, not encodable as
    UTF-8) become U+FFFD."""
    return "".join(
        " " if ch < " " or "\x7f" <= ch <= "\x9f" else "\ufffd" if "\ud800" <= ch <= "\udfff" else ch
        for ch in text
    )


def _status_reason(value: object) -> str:
    shown = printable(value) if isinstance(value, str) else json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f'status is "{shown}"' if isinstance(value, str) else f"status is {shown}"


def judge_body(
    body: bytes, expect: tuple[str, ...], foreign: bool = False, conditions: tuple[Condition, ...] = ()
) -> str | None:
    """The failure reason for a 2xx body, or None when it is healthy. ``foreign``: the body
    came from another origin after a redirect, so no text of it may reach the reason.
    ``conditions``: the target's JSON conditions (SPEC 14), judged once the status passed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays or objects
        return "invalid JSON"
    if not isinstance(data, dict):
        return "body is not a JSON object"
    if "status" not in data:
        return 'no "status" field'
    status = data["status"]
    if status not in expect:
        return "unexpected status value (answer from another host)" if foreign else _status_reason(status)
    if conditions:
        return conditions_failure(conditions, data, foreign)
    return None


def decoded_body(answer: Answer) -> bytes:
    """The body with its content coding removed, cut at MAX_BODY + 1. Raises ValueError."""
    encoding = answer.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return answer.body  # identity, or a label some servers send wrongly ("utf-8"): read as is
    # We asked for identity; a server that compresses anyway is still understood, within the
    # same limit on what the body expands to (a gzip bomb stops at 1 MiB + 1 byte).
    try:
        wbits = zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS
        return zlib.decompressobj(wbits).decompress(answer.body, MAX_BODY + 1)
    except zlib.error:
        try:  # "deflate" is often sent raw, without the zlib wrapper
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(answer.body, MAX_BODY + 1)
        except zlib.error as exc:
            raise ValueError("bad compressed body") from exc


def judge(
    answer: Answer, expect: tuple[str, ...], foreign: bool = False, conditions: tuple[Condition, ...] = ()
) -> str | None:
    """The failure reason for an answer, or None when it is healthy."""
    if not 200 <= answer.status < 300:
        return f"HTTP {answer.status}"
    try:
        body = decoded_body(answer)
    except ValueError:
        return INVALID
    if len(body) > MAX_BODY:
        return TOO_LARGE
    return judge_body(body, expect, foreign, conditions)


def slow_reason(latency_ms: float, max_latency_ms: float | None) -> str | None:
    if max_latency_ms is not None and latency_ms > max_latency_ms:
        return f"slow: {latency_ms:.0f} ms > {max_latency_ms:.0f} ms"
    return None
