"""What one fresh-connection health check costs in CPU, by HTTP client implementation.

    python -m bench.client_cost --rate 1000 --seconds 20          # starts its own farm

Fires GET /t/<i> at a fixed rate (one task per request, as the monitor's scheduler does)
against the loopback farm and reports this process's CPU ms per request for:

  aiohttp   a bare aiohttp check: ClientSession, TCPConnector(force_close=True),
            asyncio.timeout per check, body read in 64 KiB chunks, json.loads
  raw       the least a check can do: asyncio.Protocol over loop.create_connection, write a
            prebuilt request, parse the status line, json.loads the body, close
  checker   the monitor's own keepalive.probe.checker.Checker (plain http: the lean client of
            keepalive/http1.py), every reason and limit included
  checker-aiohttp   the same Checker with lean=False (what https and reused connections use)

All on uvloop when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import aiohttp

from bench.aio import install_fast_loop
from bench.children import Children, read_ready_line
from keepalive.probe.checker import Checker
from keepalive.targets import Target

ROOT = Path(__file__).resolve().parent.parent

MAX_BODY = 1024 * 1024


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RawCheck(asyncio.Protocol):
    """One HTTP/1.1 GET on a fresh connection; resolves to an error reason or None (healthy)."""

    __slots__ = ("buffer", "done", "request", "transport")

    def __init__(self, request: bytes, done: asyncio.Future[str | None]) -> None:
        self.request = request
        self.done = done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_BODY + 65536 and self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        head, sep, body = bytes(self.buffer).partition(b"\r\n\r\n")
        if not sep:
            self.done.set_result("invalid HTTP answer")
            return
        status = head[9:12]
        if not status.startswith(b"2"):
            self.done.set_result(f"HTTP {status.decode('latin-1')}")
            return
        try:
            data = json.loads(body)
        except ValueError:
            self.done.set_result("invalid JSON")
            return
        self.done.set_result(None if isinstance(data, dict) and data.get("status") == "ok" else "bad status")


async def drive(
    rate: float, seconds: float, check: Callable[[int], Awaitable[str | None]], tick: float = 0.0
) -> dict[str, float]:
    """Fire check(k) at start + k / rate. tick 0: wake for every request (one timer each, as a
    task per target sleeping until its own due time does); tick > 0: wake every ``tick`` s
    and start every check already due (a timer wheel)."""
    loop = asyncio.get_running_loop()
    ok = bad = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        nonlocal ok, bad
        try:
            reason = await check(index)
        except Exception:
            reason = "error"
        if reason is None:
            ok += 1
        else:
            bad += 1

    start = loop.time()
    cpu0 = cpu_now()
    k = 0
    while True:
        due = start + k / rate
        now = loop.time()
        if due >= start + seconds:
            break
        if due > now:
            await asyncio.sleep(max(due - now, tick))
            continue
        while due <= now and due < start + seconds:
            task = loop.create_task(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
            due = start + k / rate
    if tasks:
        await asyncio.wait(set(tasks), timeout=10)
    cpu = cpu_now() - cpu0
    wall = loop.time() - start
    return {
        "requests": ok + bad,
        "failed": bad,
        "achieved_per_second": round((ok + bad) / wall, 1),
        "cpu_percent": round(100 * cpu / wall, 1),
        "cpu_ms_per_request": round(1000 * cpu / max(1, ok + bad), 4),
    }


async def run_aiohttp(
    ports: list[int], targets: int, rate: float, seconds: float, tick: float
) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True, ttl_dns_cache=60)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": "bench", "Accept": "application/json"},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/t/{i}" for i in range(targets)]

    async def check(index: int) -> str | None:
        async with asyncio.timeout(5.0):
            async with session.get(urls[index % targets], allow_redirects=True, max_redirects=5) as resp:
                if not 200 <= resp.status < 300:
                    return f"HTTP {resp.status}"
                body = bytearray()
                while chunk := await resp.content.read(65536):
                    body += chunk
        data = json.loads(bytes(body))
        return None if isinstance(data, dict) and data.get("status") == "ok" else "bad status"

    try:
        return await drive(rate, seconds, check, tick)
    finally:
        await session.close()


async def run_raw(
    ports: list[int], targets: int, rate: float, seconds: float, tick: float
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    requests = [
        (
            ports[i % len(ports)],
            f"GET /t/{i} HTTP/1.1\r\nHost: 127.0.0.1:{ports[i % len(ports)]}\r\nUser-Agent: bench\r\n"
            "Accept: application/json\r\nConnection: close\r\n\r\n".encode(),
        )
        for i in range(targets)
    ]

    async def check(index: int) -> str | None:
        port, request = requests[index % targets]
        done: asyncio.Future[str | None] = loop.create_future()
        async with asyncio.timeout(5.0):
            await loop.create_connection(lambda: RawCheck(request, done), "127.0.0.1", port)
            return await done

    return await drive(rate, seconds, check, tick)


async def run_checker(
    ports: list[int], targets: int, rate: float, seconds: float, tick: float, lean: bool = True
) -> dict[str, float]:
    checker = Checker(lean=lean)
    watched = [
        Target(
            name=f"t{i}",
            url=f"http://127.0.0.1:{ports[i % len(ports)]}/t/{i}",
            interval=10.0,
            failure_threshold=3,
            success_threshold=1,
            timeout=5.0,
        )
        for i in range(targets)
    ]

    async def check(index: int) -> str | None:
        return (await checker.check(watched[index % targets])).reason

    try:
        return await drive(rate, seconds, check, tick)
    finally:
        await checker.close()


async def run_checker_aiohttp(
    ports: list[int], targets: int, rate: float, seconds: float, tick: float
) -> dict[str, float]:
    return await run_checker(ports, targets, rate, seconds, tick, lean=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--clients", default="aiohttp,raw,checker,checker-aiohttp")
    parser.add_argument(
        "--tick", type=float, default=0.0, help="batch due checks every TICK s (0: one timer each)"
    )
    args = parser.parse_args(argv)
    seconds = min(max(args.seconds, 1.0), 300.0)
    install_fast_loop()
    children = Children()
    try:
        farm = children.start(
            [sys.executable, "-m", "bench.farm", "--targets", str(args.targets)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        ports = [int(p) for p in read_ready_line(farm, 20)["ports"]]
        for client in args.clients.split(","):
            runner = {
                "aiohttp": run_aiohttp,
                "raw": run_raw,
                "checker": run_checker,
                "checker-aiohttp": run_checker_aiohttp,
            }[client.strip()]
            time.sleep(1.0)
            result = asyncio.run(runner(ports, args.targets, args.rate, seconds, args.tick))
            print(
                json.dumps({"client": client.strip(), "rate": args.rate, "tick": args.tick, **result}),
                flush=True,
            )
    finally:
        children.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
