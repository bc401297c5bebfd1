"""``monitor_server.py --remediate NAME``: run a target's on_down through the running monitor.

Over the monitor's own endpoint (``POST /api/targets/<name>/remediate?wait=1``) with the API
token, like the other command-line writes (keepalive.client), so the run is the monitor's: one
at a time per target, in events and on the page. Prints the result and the command's last
output lines; exit 0 when the command exited 0, 1 otherwise (with one line saying why).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any, TextIO
from urllib.parse import quote

from keepalive.client import ClientError, _fail, base_url, token_for, who
from keepalive.config import Settings
from keepalive.probe.checker import printable

# Beyond the command's own remediation_timeout: the kill grace and the answer's way back.
SLACK = 15.0


def remediate(settings: Settings, name: str, out: TextIO = sys.stdout) -> int:
    wanted = " ".join(name.split()).casefold()
    known = next((t for t in settings.targets if t.name.casefold() == wanted), None)
    timeout = (known.remediation_timeout if known is not None else 60.0) + SLACK
    try:
        url = f"{base_url(settings)}/api/targets/{quote(name, safe='')}/remediate?wait=1"
        request = urllib.request.Request(url, data=b"", method="POST")
        request.add_header("Authorization", f"Bearer {token_for(settings)}")
        request.add_header("X-Keepalive-User", who())
        status, body = _send(request, timeout, base_url(settings))
    except ClientError as exc:
        return _fail(str(exc))
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("remediation"), dict):
        error = body.get("error") if isinstance(body, dict) else None
        return _fail(
            f"refused (HTTP {status}): {error}" if isinstance(error, str) else f"refused (HTTP {status})"
        )
    result = body["remediation"]
    print(f"{printable(str(body.get('target')))}: {printable(str(result.get('summary')))}", file=out)
    for line in result.get("output") or []:
        print(f"  | {printable(str(line))}", file=out)
    return 0 if result.get("ok") is True else 1


def _send(request: urllib.request.Request, timeout: float, where: str) -> tuple[int, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower():
            raise ClientError(f"the monitor is not running (nothing answers on {where})") from None
        raise ClientError(f"the monitor at {where} did not answer: {reason}") from None
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        raise ClientError(f"{where} answered HTTP {status} that is not the monitor's JSON") from None
