"""Command-line writes to the running monitor (SPEC 12, 13): ``--silence``, ``--silences``,
``--unsilence``, over the monitor's own endpoint with the token from MONITOR_STATE_DIR/api_token.

Each prints one result (the new silence's id alone on stdout, so a script can keep it) and
returns an exit code: 0 done, 1 not done (the monitor does not run, the token is refused, the
request is invalid), each with one line on stderr saying why.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TextIO

from keepalive.apitoken import read_token
from keepalive.config import Settings
from keepalive.errors import ConfigError
from keepalive.policy.durations import parse_duration
from keepalive.probe.checker import printable

EXIT_OK = 0
EXIT_FAILED = 1
TIMEOUT = 10.0
# An answer from our own monitor is small; a bigger one is not from it.
MAX_ANSWER = 4 * 1024 * 1024


class ClientError(Exception):
    """Why a command-line write did not happen, in one line."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


def base_url(settings: Settings) -> str:
    """Where the monitor on this machine answers: a wildcard bind is reached over loopback."""
    if not settings.http_port:
        raise ClientError("the monitor's web endpoint is off (MONITOR_HTTP_PORT=0): writes go through it")
    host = settings.http_host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.http_port}"


def token_for(settings: Settings) -> str:
    if settings.quiet.api_token:
        return settings.quiet.api_token
    try:
        token = read_token(settings.state_dir)
    except ConfigError as exc:
        raise ClientError(str(exc)) from None
    if token is None:
        raise ClientError(
            f"no API token in {settings.state_dir}/api_token: the monitor writes it at its first start "
            "(or set MONITOR_API_TOKEN)"
        )
    return token


def request(settings: Settings, method: str, path: str, body: Any = None) -> Answer:
    """One request to the running monitor with the token; raises ClientError when it is not
    running or does not answer like itself."""
    url = base_url(settings) + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token_for(settings)}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    # No proxy: this is the monitor on this machine, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=TIMEOUT) as response:
            status, raw = response.status, response.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(MAX_ANSWER)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower():
            raise ClientError(
                f"the monitor is not running (nothing answers on {base_url(settings)})"
            ) from None
        raise ClientError(f"the monitor at {base_url(settings)} did not answer: {reason}") from None
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        raise ClientError(
            f"{base_url(settings)} answered HTTP {status} that is not the monitor's JSON"
        ) from None
    return Answer(status, parsed)


def _error(answer: Answer) -> str:
    if isinstance(answer.body, dict) and isinstance(answer.body.get("error"), str):
        return f"refused (HTTP {answer.status}): {answer.body['error']}"
    return f"refused (HTTP {answer.status})"


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "someone"
    return f"{user}@{socket.gethostname()}"


def silence(
    settings: Settings, globs: list[str], duration: str, comment: str, out: TextIO = sys.stdout
) -> int:
    try:
        parse_duration(duration)
    except ValueError as exc:
        return _fail(f"--for {exc}")
    body = {
        "targets": globs if len(globs) > 1 else globs[0],
        "duration": duration,
        "comment": comment,
        "created_by": who(),
    }
    try:
        answer = request(settings, "POST", "/api/silences", body)
    except ClientError as exc:
        return _fail(str(exc))
    if answer.status != 201 or not isinstance(answer.body, dict):
        return _fail(_error(answer))
    print(answer.body["id"], file=out)
    total = answer.body.get("matches_total")
    held = "" if total is None else f", {total} target(s) now"
    print(
        f"silenced {', '.join(globs)} until {answer.body['ends_at']} ({answer.body['remaining']}{held})",
        file=sys.stderr,
    )
    if total == 0:
        print("warning: no target matches it yet (a typo?); it still holds any that will", file=sys.stderr)
    return EXIT_OK


def list_silences(settings: Settings, out: TextIO = sys.stdout) -> int:
    try:
        answer = request(settings, "GET", "/api/silences")
    except ClientError as exc:
        return _fail(str(exc))
    if answer.status != 200 or not isinstance(answer.body, dict):
        return _fail(_error(answer))
    rows = answer.body.get("silences", [])
    if not rows:
        print("no silences", file=out)
        return EXIT_OK
    table = [("ID", "ENDS (UTC)", "LEFT", "BY", "TARGETS", "COMMENT")]
    for s in rows:
        table.append(
            (
                s["id"][:8],
                s["ends_at"],
                s["remaining"],
                printable(s["created_by"]),
                printable(",".join(s["targets"])),
                printable(s["comment"]),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5], file=out)
    return EXIT_OK


def unsilence(settings: Settings, silence_id: str, out: TextIO = sys.stdout) -> int:
    wanted = silence_id.strip()
    if not wanted or not all(c.isalnum() for c in wanted):
        return _fail(f"--unsilence {silence_id!r}: expected a silence id as --silences shows it")
    try:
        answer = request(settings, "DELETE", f"/api/silences/{wanted}")
    except ClientError as exc:
        return _fail(str(exc))
    if answer.status != 204:
        return _fail(_error(answer))
    print(f"silence {wanted} removed", file=out)
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"error: {printable(message)}", file=sys.stderr)
    return EXIT_FAILED
