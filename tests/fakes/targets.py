"""Misbehaving health targets on one real loopback HTTP server, for end-to-end checker tests.

One ``TargetServer`` hosts any number of targets, one per path: ``server.url("api")`` is
``http://127.0.0.1:<port>/t/api``. Every path answers ``ok`` until told otherwise, and its
behaviour can be switched at any time, from the test or over HTTP::

    server.set_mode("api", "http503")
    server.set_mode("api", "slow", delay=3)
    server.set_mode("/health", "degraded")        # a path starting with "/" is used as it is
    curl -X POST 'http://127.0.0.1:<port>/_mode/api?mode=drip'

Modes (``MODES``), and the options they take:

    ok              200 {"status": "ok"}                 payload={...} sends another object
    http500         500 {"status": "error"}
    http503         503 {"status": "unavailable"}
    bad_json        200, a truncated JSON object
    not_object      200 ["ok"]
    degraded        200 {"status": "degraded"}
    missing_status  200 {"uptime_seconds": 1}
    slow            waits ``delay`` seconds (default 2), then answers ok
    drip            200 and headers, then one body byte every ``interval`` s (0.2) until stopped
    huge            200 JSON of ``size`` bytes (2 MiB + 1 KiB), streamed in 64 KiB writes,
                    close-delimited unless ``declare_length=True`` sends a Content-Length
    redirect_loop   302 to its own URL, forever
    redirect        302 to ``location``
    reset           reads the request, then closes with SO_LINGER 0: the client sees a reset
    hang            reads the request and never answers until the server stops

Any mode also takes ``delay``: seconds to wait before behaving (``slow`` is ``ok`` + delay).
Requests are counted per path (``server.count("api")``; redirect hops count each time).
``stop()`` never hangs: it wakes sleeping handlers and shuts every open connection down.

Admin endpoints (not counted): ``POST /_mode/<name>?mode=M&delay=...`` (or
``?path=/x&mode=M``), ``GET /_count/<name>``, ``GET /_counts``, ``POST /_reset``.

Standalone: ``python -m tests.fakes.targets --port 0 [--mode api=http500 ...]`` prints
``targets: listening on http://127.0.0.1:<port>`` and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.standalone import serve_until_signalled

MODES = (
    "ok",
    "http500",
    "http503",
    "bad_json",
    "not_object",
    "degraded",
    "missing_status",
    "slow",
    "drip",
    "huge",
    "redirect_loop",
    "redirect",
    "reset",
    "hang",
)
TARGET_PREFIX = "/t/"
HUGE_DEFAULT_SIZE = 2 * 1024 * 1024 + 1024
_OPTION_TYPES: dict[str, type] = {
    "delay": float,
    "interval": float,
    "size": int,
    "declare_length": bool,
    "location": str,
    "payload": dict,
}
_SIMPLE: dict[str, tuple[int, bytes]] = {
    "http500": (500, b'{"status": "error"}'),
    "http503": (503, b'{"status": "unavailable"}'),
    "bad_json": (200, b'{"status": "ok", "uptime'),
    "not_object": (200, b'["ok"]'),
    "degraded": (200, b'{"status": "degraded"}'),
    "missing_status": (200, b'{"uptime_seconds": 1}'),
}


@dataclass(frozen=True)
class Behaviour:
    mode: str = "ok"
    options: Mapping[str, Any] = field(default_factory=dict)


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on (bound, then closed): connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def _path_for(name: str) -> str:
    return name if name.startswith("/") else TARGET_PREFIX + name


def _check_options(mode: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    unknown = sorted(set(options) - set(_OPTION_TYPES))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}: expected one of {', '.join(_OPTION_TYPES)}")
    if mode == "redirect" and "location" not in options:
        raise ValueError("mode 'redirect' needs location=...")
    return dict(options)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: TargetServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn, but remembering every connection so stop() can shut it down.
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), name="target-handler", daemon=True
        )
        self.owner._track(request, thread)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.owner._untrack(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (reset, broken pipe) are part of the game here


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path.startswith("/_"):
            self._admin(path, parse_qs(parts.query))
            return
        behaviour = owner._arrived(path)
        delay = float(behaviour.options.get("delay", 2.0 if behaviour.mode == "slow" else 0.0))
        if delay > 0 and owner._stopping.wait(delay):
            return
        if behaviour.mode in _SIMPLE:
            self._send(*_SIMPLE[behaviour.mode])
        else:
            getattr(self, "_mode_" + behaviour.mode)(behaviour.options)

    # -- modes -----------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _mode_ok(self, options: Mapping[str, Any]) -> None:
        self._send(200, json.dumps(options.get("payload", {"status": "ok"})).encode())

    def _mode_slow(self, options: Mapping[str, Any]) -> None:
        self._mode_ok(options)

    def _mode_redirect_loop(self, options: Mapping[str, Any]) -> None:
        self._send(302, b"{}", {"Location": self.path})

    def _mode_redirect(self, options: Mapping[str, Any]) -> None:
        self._send(302, b"{}", {"Location": str(options["location"])})

    def _mode_drip(self, options: Mapping[str, Any]) -> None:
        interval = float(options.get("interval", 0.2))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok", "pad": "')
        stopping = self.server.owner._stopping
        with suppress(OSError):
            while not stopping.wait(interval):
                self.wfile.write(b"x")

    def _mode_huge(self, options: Mapping[str, Any]) -> None:
        size = max(64, int(options.get("size", HUGE_DEFAULT_SIZE)))
        head, tail = b'{"status": "ok", "pad": "', b'"}'
        pad = size - len(head) - len(tail)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if options.get("declare_length", False):
            self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * 65536
        stopping = self.server.owner._stopping
        with suppress(OSError):  # the client is expected to hang up after 1 MiB
            self.wfile.write(head)
            while pad > 0 and not stopping.is_set():
                self.wfile.write(chunk[: min(pad, len(chunk))])
                pad -= min(pad, len(chunk))
            self.wfile.write(tail)

    def _mode_reset(self, options: Mapping[str, Any]) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN. The file
        # objects share the socket, so they must go first or close() would not close it.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _mode_hang(self, options: Mapping[str, Any]) -> None:
        self.server.owner._stopping.wait()

    # -- admin -----------------------------------------------------------------------------

    def _admin(self, path: str, query: dict[str, list[str]]) -> None:
        owner = self.server.owner
        arg = {key: values[-1] for key, values in query.items()}
        try:
            if path.startswith("/_mode"):
                name = arg.pop("path", None) or path.removeprefix("/_mode").lstrip("/")
                mode = arg.pop("mode", "ok")
                options = {key: _parse_option(key, value) for key, value in arg.items()}
                owner.set_mode(name, mode, **options)
                self._send(200, json.dumps({"path": _path_for(name), "mode": mode}).encode())
            elif path.startswith("/_count/"):
                name = path.removeprefix("/_count/")
                self._send(200, json.dumps({"path": _path_for(name), "requests": owner.count(name)}).encode())
            elif path == "/_counts":
                self._send(200, json.dumps(owner.counts()).encode())
            elif path == "/_reset":
                owner.reset()
                self._send(200, b'{"reset": true}')
            else:
                self._send(404, json.dumps({"error": f"unknown admin path {path}"}).encode())
        except ValueError as exc:
            self._send(400, json.dumps({"error": str(exc)}).encode())


def _parse_option(key: str, value: str) -> Any:
    kind = _OPTION_TYPES.get(key)
    if kind is bool:
        return value.lower() in ("1", "true", "yes", "on")
    if kind is dict:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"option {key}={value!r} is not JSON") from None
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"option {key}={value!r} is not a number") from None
    return value


class TargetServer:
    """A threaded loopback HTTP server whose paths misbehave on request. See the module doc."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default_mode: str = "ok") -> None:
        self.host = host
        self._requested_port = port
        self._default = Behaviour(default_mode, _check_options(default_mode, {}))
        self._behaviours: dict[str, Behaviour] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TargetServer:
        if self._server is not None:
            raise RuntimeError("TargetServer is already started")
        self._stopping.clear()
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="target-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, wake every sleeping or hung handler, close every connection."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections, handlers = list(self._connections), list(self._handlers)
        for conn in connections:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        deadline = time.monotonic() + timeout
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server = self._thread = None

    def __enter__(self) -> TargetServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        port: int = self._server.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, name: str) -> str:
        """The URL of target ``name`` (``/t/<name>``), or of a path starting with ``/``."""
        return self.base_url + _path_for(name)

    # -- behaviour and counts ----------------------------------------------------------------

    def set_mode(self, name: str, mode: str, **options: Any) -> None:
        """Switch target ``name`` (or a ``/path``) to ``mode``; takes effect on its next request."""
        behaviour = Behaviour(mode, _check_options(mode, options))
        with self._lock:
            self._behaviours[_path_for(name)] = behaviour

    def mode(self, name: str) -> str:
        with self._lock:
            return self._behaviours.get(_path_for(name), self._default).mode

    def count(self, name: str) -> int:
        """Requests that reached target ``name`` (or a ``/path``) so far."""
        with self._lock:
            return self._counts.get(_path_for(name), 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def wait_for_requests(self, name: str, at_least: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``name`` has had ``at_least`` requests; False when the deadline passes."""
        path = _path_for(name)
        with self._changed:
            return self._changed.wait_for(lambda: self._counts.get(path, 0) >= at_least, timeout)

    def reset(self) -> None:
        """Every path back to the default mode, every count to zero."""
        with self._lock:
            self._behaviours.clear()
            self._counts.clear()

    @contextmanager
    def mode_for(self, name: str, mode: str, **options: Any) -> Iterator[None]:
        """Use ``mode`` inside a ``with`` block, then go back to the previous behaviour."""
        path = _path_for(name)
        with self._lock:
            previous = self._behaviours.get(path)
        self.set_mode(name, mode, **options)
        try:
            yield
        finally:
            with self._lock:
                if previous is None:
                    self._behaviours.pop(path, None)
                else:
                    self._behaviours[path] = previous

    # -- used by the handlers ----------------------------------------------------------------

    def _arrived(self, path: str) -> Behaviour:
        with self._changed:
            self._counts[path] = self._counts.get(path, 0) + 1
            self._changed.notify_all()
            return self._behaviours.get(path, self._default)

    def _track(self, conn: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections.add(conn)
            self._handlers.add(thread)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._handlers.discard(threading.current_thread())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Misbehaving /health targets for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--mode", action="append", default=[], metavar="NAME=MODE", help=f"initial mode; one of {MODES}"
    )
    args = parser.parse_args(argv)
    server = TargetServer(args.host, args.port)
    for item in args.mode:
        name, _, mode = item.partition("=")
        try:
            server.set_mode(name, mode)
        except ValueError as exc:
            parser.error(str(exc))
    return serve_until_signalled(server, lambda: f"targets: listening on {server.base_url}")


if __name__ == "__main__":
    sys.exit(main())
