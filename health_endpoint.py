"""A ``GET /health`` endpoint for any Python server, on its own port, in a background thread.

Standard library only: copy this one file into any project (Python 3.9+ for the typing syntax
under ``from __future__ import annotations``; 3.11 is what this repository tests).

    from health_endpoint import HealthEndpoint

    health = HealthEndpoint(port=5004, callback=lambda: {"clients": len(clients)})
    health.start()          # returns at once; a daemon thread serves the requests
    ...
    health.stop()

``GET /health`` answers ``200`` with a JSON object::

    {"status": "ok", "uptime_seconds": 12.5, "timestamp": "2026-01-01T12:00:00Z", ...callback()}

- ``uptime_seconds`` counts from ``start()``; ``timestamp`` is the current UTC time.
- The callback's fields are merged in last, so it may override ``"status"`` (for example
  ``"degraded"``) — the Keep-Alive Monitor counts any status but the expected one as a failure.
  Values JSON cannot encode are sent as ``str(value)``.
- When the callback raises (or returns something that is not a mapping) the answer is ``503``
  with ``{"status": "error", "error": "<ExceptionType>: <message>", "uptime_seconds", "timestamp"}``.
- ``HEAD`` answers the same status and headers without a body; any other path is ``404`` JSON.

The default host is ``127.0.0.1`` (only this machine can ask); pass ``host="0.0.0.0"`` (or
``"::"``) for a monitor on another machine. Requests are not logged unless ``log_requests=True``,
and then through the ``logging`` module (logger ``health_endpoint``), never straight to stderr.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["HealthCallback", "HealthEndpoint"]

HealthCallback = Callable[[], Mapping[str, Any]]

log = logging.getLogger("health_endpoint")


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 - stays 3.9-copyable


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], endpoint: HealthEndpoint) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.endpoint = endpoint
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "HealthEndpoint/1.0"
    # A client that connects and sends nothing must not hold a thread for long.
    timeout = 10

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        endpoint = self.server.endpoint
        path = self.path.split("?", 1)[0]
        if path == endpoint.path:
            code, payload = endpoint.health()
        else:
            code, payload = 404, {"status": "error", "error": f"not found: {path}"}
        body = json.dumps(payload, default=str).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.endpoint.log_requests:
            log.info("%s %s", self.address_string(), format % args)


class HealthEndpoint:
    """Serves ``GET <path>`` on ``host:port`` from a background daemon thread.

    ``port=0`` picks a free port; read the real one from ``.port`` after ``start()``.
    Usable as a context manager (``with HealthEndpoint(...) as health:`` starts and stops it)."""

    def __init__(
        self,
        port: int = 5004,
        host: str = "127.0.0.1",
        callback: HealthCallback | None = None,
        path: str = "/health",
        *,
        log_requests: bool = False,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path={path!r} is invalid: expected a path starting with '/'")
        self.host = host
        self.callback = callback
        self.path = path
        self.log_requests = log_requests
        self._port = port
        self._started = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The port it listens on: the real one once started, even when 0 was asked for."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        """The health URL, with a loopback address when listening on every interface."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Bind the port and serve in a daemon thread. Raises OSError when the port is taken."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("HealthEndpoint is already started")
            server = _Server((self.host, self._port), self)
            self._started = time.monotonic()
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"health-endpoint-{server.server_address[1]}",
                daemon=True,
            )
            self._server = server
            self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port. Safe to call twice, or before start()."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self._started, 3) if self._started else 0.0

    def health(self) -> tuple[int, dict[str, Any]]:
        """The HTTP status code and JSON object that ``GET <path>`` answers right now."""
        payload: dict[str, Any] = {
            "status": "ok",
            "uptime_seconds": self.uptime_seconds(),
            "timestamp": _utc_now(),
        }
        if self.callback is None:
            return 200, payload
        try:
            extra = self.callback()
            if not isinstance(extra, Mapping):
                raise TypeError(f"the health callback returned {type(extra).__name__}, not a dict")
            payload.update(extra)
        except Exception as exc:
            # The whole point of the endpoint: a broken server must say so, not crash the thread.
            return 503, {**payload, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
        return 200, payload

    def __enter__(self) -> HealthEndpoint:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
