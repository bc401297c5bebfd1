"""The monitor's own HTTP endpoint: /health, /metrics, /api/status and the status page.

Every answer is read from a ``MonitorView`` at request time. This module keeps no state and
is given no settings, so nothing secret can reach a page: what the view returns is all there is.

Routes (GET only; aiohttp answers HEAD for each, anything else is 405, unknown paths 404):
    /health             200 {"status": "ok", ...} or 503 {"status": "stalled", ...}
    /metrics            Prometheus text format (see keepalive.web.metrics)
    /api/status         the status document; ``?history=0`` leaves out the per-target history
    /                   the status page, which polls /api/status
    /static/status.js   its script, served separately so the page's CSP needs no inline code
    /static/status.css  its style sheet
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from keepalive.errors import ConfigError
from keepalive.web.metrics import build_registry

STATIC_DIR = Path(__file__).parent / "static"

NO_STORE = "no-store"
# The page loads nothing but its own script and style sheet and talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate rather than cache forever: the files change when the monitor is upgraded.
    "Cache-Control": "no-cache",
}
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_TRUE_WORDS = frozenset({"", "1", "true", "yes", "on"})


class MonitorView(Protocol):
    """What the web endpoint needs from the running monitor."""

    def status(self, include_history: bool = True) -> dict[str, Any]:
        """The /api/status document: {"monitor": {...}, "targets": [...], "channels": [...]}."""
        ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(is the checking loop making progress?, the /health body)."""
        ...


class _Handlers:
    def __init__(self, view: MonitorView) -> None:
        self._view = view
        self._registry = build_registry(view)
        # Read once: a missing file should fail at start-up, not on the first visitor.
        self._page = (STATIC_DIR / "status.html").read_bytes()
        self._script = (STATIC_DIR / "status.js").read_bytes()
        self._style = (STATIC_DIR / "status.css").read_bytes()

    async def health(self, request: web.Request) -> web.Response:
        progressing, body = self._view.health()
        return web.json_response(
            body, status=200 if progressing else 503, headers={"Cache-Control": NO_STORE}
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(
            body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": NO_STORE}
        )

    async def api_status(self, request: web.Request) -> web.Response:
        word = request.query.get("history", "1").strip().lower()
        if word not in _FALSE_WORDS and word not in _TRUE_WORDS:
            return web.json_response(
                {"error": f"history={word!r} is invalid: expected 0 or 1"},
                status=400,
                headers={"Cache-Control": NO_STORE},
            )
        document = self._view.status(include_history=word not in _FALSE_WORDS)
        return web.json_response(document, headers={"Cache-Control": NO_STORE})

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._script, content_type="text/javascript", charset="utf-8", headers=PAGE_HEADERS
        )

    async def style(self, request: web.Request) -> web.Response:
        return web.Response(body=self._style, content_type="text/css", charset="utf-8", headers=PAGE_HEADERS)


async def _common_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # Also reaches aiohttp's own 404/405 answers, which no handler of ours builds.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", NO_STORE)


def create_app(view: MonitorView) -> web.Application:
    """The aiohttp application serving /health, /metrics, /api/status and the status page."""
    handlers = _Handlers(view)
    app = web.Application()
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/api/status", handlers.api_status)
    app.router.add_get("/", handlers.page)
    app.router.add_get("/static/status.js", handlers.script)
    app.router.add_get("/static/status.css", handlers.style)
    app.on_response_prepare.append(_common_headers)
    return app


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    where = _address(host, port)
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"MONITOR_HTTP_HOST={host!r} is invalid: cannot listen on {where} "
            f"(not an address of this machine: {exc.strerror or exc})"
        )
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"MONITOR_HTTP_PORT={port} is invalid: address {where} already in use")
    if exc.errno == errno.EACCES:
        return ConfigError(
            f"MONITOR_HTTP_PORT={port} is invalid: permission denied to listen on {where} "
            "(ports below 1024 need root)"
        )
    return ConfigError(
        f"MONITOR_HTTP_PORT={port} is invalid: cannot listen on {where}: {exc.strerror or exc}"
    )


async def start_web(view: MonitorView, host: str, port: int) -> web.AppRunner:
    """Serve ``create_app(view)`` on host:port and return the runner; ``await runner.cleanup()`` stops it.

    Raises ConfigError, one line naming MONITOR_HTTP_PORT or MONITOR_HTTP_HOST, when the
    address cannot be bound. Port 0 picks a free port; read it from ``runner.addresses``.
    """
    # No access log: it would write a second, Apache-style line format into the monitor's log,
    # once per scrape. A short shutdown timeout keeps a stop prompt: every answer is immediate.
    runner = web.AppRunner(create_app(view), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise _bind_error(host, port, exc) from None
    return runner
