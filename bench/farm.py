"""A fast loopback target farm: thousands of /health-like targets in one asyncio process.

Target ``i`` answers ``GET /t/<i>`` with ``200 {"status": "ok"}`` and closes the connection
(every check opens a fresh one, as the monitor does). It is a raw ``asyncio.Protocol`` on uvloop
when installed, not a web framework, so that the farm stays far from being the bottleneck.

Control paths (same ports):
  POST /_fail/<i>[?mode=503|hang|degraded]  target i starts failing; answers {"t": epoch seconds}
  POST /_ok/<i>                             target i answers ok again
  POST /_window?interval=S                  start a measuring window (clears the per-target gaps)
  GET  /_stats                              requests served, and the window's per-target gaps
  GET  /_ping                               {"status": "ok"}

The window's "gaps" are, per target, the time between two consecutive requests: a perfectly
punctual poller at interval S gives gaps of exactly S, so the farm sees every poller (ours or a
peer) with the same yardstick.

Run: ``python -m bench.farm --ports 0,0,0,0`` prints one JSON line ``{"ports": [...]}`` once
it listens, and stops on SIGTERM/SIGINT, when its parent exits, or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any, cast
from urllib.parse import parse_qs

from bench.aio import install_fast_loop, watch_parent

OK_BODY = b'{"status": "ok"}'
FAIL_BODIES = {
    "503": (b"503 Service Unavailable", b'{"status": "error", "reason": "bench says fail"}'),
    "degraded": (b"200 OK", b'{"status": "degraded"}'),
}


def response(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


OK_RESPONSE = response(b"200 OK", OK_BODY)
NOT_FOUND = response(b"404 Not Found", b'{"error": "no such path"}')
BAD_REQUEST = response(b"400 Bad Request", b'{"error": "bad request"}')


class Farm:
    """State shared by every connection: which targets fail, and the measuring window."""

    def __init__(self, targets: int, hang_seconds: float) -> None:
        self.targets = targets
        self.hang_seconds = hang_seconds
        self.failing: dict[int, str] = {}
        self.requests_total = 0
        self.started = time.monotonic()
        self.window_interval = 0.0
        self.window_started = time.monotonic()
        self.window_requests = 0
        self.last_seen: list[float] = [0.0] * targets
        self.gaps: list[float] = []

    def start_window(self, interval: float) -> None:
        self.window_interval = interval
        self.window_started = time.monotonic()
        self.window_requests = 0
        self.last_seen = [0.0] * self.targets
        self.gaps = []

    def hit(self, index: int) -> bytes | None:
        """Account for one request to target ``index``; returns the answer (None: hang)."""
        self.requests_total += 1
        if self.window_interval:
            now = time.monotonic()
            self.window_requests += 1
            previous = self.last_seen[index]
            if previous:
                self.gaps.append(now - previous)
            self.last_seen[index] = now
        mode = self.failing.get(index)
        if mode is None:
            return OK_RESPONSE
        if mode == "hang":
            return None
        status, body = FAIL_BODIES[mode]
        return response(status, body)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        seen = sum(1 for value in self.last_seen if value)
        return {
            "requests_total": self.requests_total,
            "uptime_seconds": round(now - self.started, 3),
            "failing": {str(k): v for k, v in self.failing.items()},
            "window": {
                "interval": self.window_interval,
                "seconds": round(now - self.window_started, 3),
                "requests": self.window_requests,
                "targets_seen": seen,
                "gaps": [round(gap, 5) for gap in self.gaps],
            },
        }

    def control(self, method: bytes, path: str, query: str) -> bytes:
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        if method == b"GET" and path == "/_ping":
            return response(b"200 OK", OK_BODY)
        if method == b"GET" and path == "/_stats":
            return response(b"200 OK", json.dumps(self.stats()).encode())
        if method == b"POST" and path == "/_window":
            try:
                interval = float(params.get("interval", "0"))
            except ValueError:
                return BAD_REQUEST
            self.start_window(interval)
            return response(b"200 OK", json.dumps({"t": time.time()}).encode())
        for prefix in ("/_fail/", "/_ok/"):
            if method == b"POST" and path.startswith(prefix):
                try:
                    index = int(path[len(prefix) :])
                except ValueError:
                    return BAD_REQUEST
                if not 0 <= index < self.targets:
                    return NOT_FOUND
                if prefix == "/_ok/":
                    self.failing.pop(index, None)
                    mode = "ok"
                else:
                    mode = params.get("mode", "503")
                    if mode != "hang" and mode not in FAIL_BODIES:
                        return BAD_REQUEST
                    self.failing[index] = mode
                body = {"target": index, "mode": mode, "t": time.time()}
                return response(b"200 OK", json.dumps(body).encode())
        return NOT_FOUND


class FarmProtocol(asyncio.Protocol):
    """One connection: read one request head, answer, close."""

    __slots__ = ("buffer", "farm", "transport")

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        buffer = self.buffer + data if self.buffer else data
        if b"\r\n\r\n" not in buffer:
            if len(buffer) > 16384:
                transport.write(BAD_REQUEST)
                transport.close()
            else:
                self.buffer = buffer
            return
        self.buffer = b""
        self.transport = None  # one request per connection
        line_end = buffer.find(b"\r\n")
        parts = buffer[:line_end].split(b" ")
        if len(parts) != 3:
            transport.write(BAD_REQUEST)
            transport.close()
            return
        method, target = parts[0], parts[1]
        answer: bytes | None
        if target.startswith(b"/t/") and method in (b"GET", b"HEAD"):
            raw_path = target.split(b"?", 1)[0]
            try:
                index = int(raw_path[3:])
            except ValueError:
                index = -1
            answer = self.farm.hit(index) if 0 <= index < self.farm.targets else NOT_FOUND
        else:
            text = target.decode("latin-1")
            path, _, query = text.partition("?")
            answer = self.farm.control(method, path, query)
        if answer is None:  # a hanging target: hold the connection, answer nothing
            asyncio.get_running_loop().call_later(self.farm.hang_seconds, transport.close)
            return
        transport.write(answer)
        transport.close()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    farm = Farm(args.targets, args.hang_seconds)
    servers = []
    for port in args.ports:
        server = await loop.create_server(
            lambda: FarmProtocol(farm), args.host, port, backlog=args.backlog, reuse_address=True
        )
        servers.append(server)
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps({"ports": ports, "loop": args.loop_name, "targets": args.targets}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch_parent(loop, stop, args.max_seconds)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--ports", default="0,0,0,0", help="comma-separated ports to listen on; 0 picks a free one"
    )
    parser.add_argument("--targets", type=int, default=100_000, help="valid target indexes: 0..N-1")
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="how long mode=hang holds")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="stop by itself after this")
    args = parser.parse_args(argv)
    args.ports = [int(port) for port in args.ports.split(",") if port.strip()]
    args.loop_name = install_fast_loop()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
