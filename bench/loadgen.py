"""A raw-asyncio load client, to measure the farm's own ceiling with fresh connections.

Each request opens a new TCP connection, sends ``GET /t/<i>``, reads until the server closes,
and counts a 200. ``--concurrency`` requests are in flight at any time, for ``--seconds``.
Prints one JSON line: requests, ok, errors, seconds, requests_per_second, own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import resource
import sys
import time
from typing import cast

from bench.aio import install_fast_loop


class OneRequest(asyncio.Protocol):
    __slots__ = ("buffer", "done", "request")

    def __init__(self, request: bytes, done: asyncio.Future[bool]) -> None:
        self.request = request
        self.done = done
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.buffer.startswith(b"HTTP/1.1 200"))


def _same(protocol: OneRequest) -> OneRequest:
    return protocol


async def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    loop = asyncio.get_running_loop()
    ports: list[int] = args.ports
    counter = itertools.count()
    ok = errors = 0
    end = time.monotonic() + args.seconds

    async def worker() -> None:
        nonlocal ok, errors
        while time.monotonic() < end:
            n = next(counter)
            index = n % args.targets
            port = ports[index % len(ports)]
            request = f"GET /t/{index} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            done: asyncio.Future[bool] = loop.create_future()
            protocol = OneRequest(request.encode(), done)
            try:
                await asyncio.wait_for(
                    loop.create_connection(functools.partial(_same, protocol), "127.0.0.1", port),
                    5.0,
                )
                passed = await asyncio.wait_for(done, 5.0)
            except (OSError, TimeoutError):
                passed = False
            if passed:
                ok += 1
            else:
                errors += 1

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    seconds = time.monotonic() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_second": round((ok + errors) / seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "concurrency": args.concurrency,
        "loop": args.loop_name,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", required=True, help="comma-separated farm ports")
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    args.ports = [int(port) for port in args.ports.split(",")]
    args.seconds = min(max(args.seconds, 0.5), 120.0)
    args.loop_name = install_fast_loop()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
