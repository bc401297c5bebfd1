"""Plain HTTP calls from the bench to its loopback servers (stdlib only, no proxies)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from typing import Any

# No proxies: every request of the bench goes to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """One plain HTTP call to a loopback server; returns (status, body), status 0 on no answer."""
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (OSError, ValueError):
        return 0, b""


def http_json(method: str, url: str, timeout: float = 10.0) -> Any:
    """An HTTP call whose 200 answer is JSON; None on any failure."""
    status, body = http(method, url, timeout=timeout)
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def get_as_sent(url: str, headers: dict[str, str], timeout: float = 30.0) -> tuple[int, bytes, bytes]:
    """GET with ``headers``; returns (status, body as it came over the wire, body decoded).

    Decoded means gunzipped when the answer says ``Content-Encoding: gzip``; status 0 on no answer."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            wire = bytes(response.read())
            status, encoding = int(response.status), response.headers.get("Content-Encoding", "")
    except urllib.error.HTTPError as exc:
        return int(exc.code), b"", b""
    except (OSError, ValueError):
        return 0, b"", b""
    try:
        return status, wire, gzip.decompress(wire) if encoding == "gzip" else wire
    except (OSError, EOFError):
        return 0, wire, b""  # a body that says gzip and is not: no usable answer
