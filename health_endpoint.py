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

A program that would rather push than be polled (a worker behind NAT, a job with no port)
reports in to a Keep-Alive Monitor push target (``push_token`` in its targets file) instead::

    from health_endpoint import Pusher

    pusher = Pusher("http://monitor:5005/ping/<push_token>", every=60, callback=health_fields)
    pusher.start()          # a daemon thread pings every 60 s
    ...
    pusher.stop()

Each beat calls the callback (the same contract as above): ``GET <ping_url>`` when it returns
a mapping whose ``"status"`` is ``"ok"`` (or absent), else ``POST <ping_url>/fail`` with a
one-line reason (the status, or the exception). A monitor that cannot be reached is logged
(logger ``health_endpoint``) and tried again at the next beat; the thread never dies of it.

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
import urllib.error
import urllib.request
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


class Pusher:
    """Pings a Keep-Alive Monitor push URL (``.../ping/<push_token>``) every ``every`` seconds
    from a daemon thread; ``/fail`` with a reason when the callback reports trouble."""

    def __init__(
        self,
        ping_url: str,
        every: float = 60.0,
        callback: HealthCallback | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        if not ping_url.startswith(("http://", "https://")) or "/ping/" not in ping_url:
            raise ValueError(
                f"ping_url={ping_url!r} is invalid: expected http(s)://<monitor>/ping/<push_token>"
            )
        if every <= 0 or timeout <= 0:
            raise ValueError("every and timeout must be positive numbers of seconds")
        self.ping_url = ping_url.rstrip("/")
        self.every = every
        self.callback = callback
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def verdict(self) -> str | None:
        """None when healthy, else the one-line reason sent to ``/fail``."""
        if self.callback is None:
            return None
        try:
            fields = self.callback()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if not isinstance(fields, Mapping):
            return f"the health callback returned {type(fields).__name__}, not a dict"
        status = fields.get("status", "ok")
        return None if status == "ok" else f"status is {json.dumps(status, default=str)}"

    def push_once(self) -> int:
        """One beat now: the monitor's HTTP status (200, or 404 for an unknown token). Raises
        OSError (urllib.error.URLError) when the monitor cannot be reached."""
        reason = self.verdict()
        if reason is None:
            request = urllib.request.Request(self.ping_url, method="GET")
        else:
            body = " ".join(reason.split())[:200].encode()
            request = urllib.request.Request(self.ping_url + "/fail", data=body, method="POST")
            request.add_header("Content-Type", "text/plain; charset=utf-8")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status = self.push_once()
                if status != 200:
                    log.warning("push to the monitor answered HTTP %s (is the push_token right?)", status)
            except (OSError, ValueError) as exc:
                log.warning("push to the monitor failed: %s", exc)
            self._stop.wait(self.every)

    def start(self) -> None:
        """Ping now, then every ``every`` seconds, from a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("Pusher is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="health-pusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop pinging (a beat in flight finishes within ``timeout``). Safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
