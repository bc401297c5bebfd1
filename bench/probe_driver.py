"""Drive Prometheus blackbox_exporter the way Prometheus would: one probe per target per interval.

Each target gets ``GET /probe?target=<url>&module=<module>`` once per ``--interval``, the
targets' first probes spread evenly over the first interval (as Prometheus spreads scrapes).
Requests to the exporter reuse keep-alive connections (as Prometheus does); the exporter opens
a fresh connection to the target for every probe. Runs for ``--seconds`` and prints one JSON
line: probes sent / answered / successful, dispatch lag, own CPU seconds.

This driver's own CPU is reported separately by the bench and never charged to the exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from urllib.parse import quote

from bench.aio import install_fast_loop
from bench.percentile import percentile


class Pool:
    """Keep-alive HTTP/1.1 connections to one server; each carries one request at a time."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(size)

    async def get(self, path: str, timeout: float) -> tuple[int, bytes]:
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
            reader, writer = conn
            try:
                async with asyncio.timeout(timeout):
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
                    status, body, keep = await read_response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append(conn)
            else:
                writer.close()
            return status, body

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.1 response (Content-Length or chunked). Returns (status, body, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size + 2))
        body = b"".join(chunk[:-2] for chunk in chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection") != "close"


async def run(args: argparse.Namespace) -> dict[str, object]:
    pool = Pool("127.0.0.1", args.exporter_port, args.connections)
    urls = [line.strip() for line in Path(args.targets_file).read_text().splitlines() if line.strip()]
    paths = [f"/probe?module={args.module}&target={quote(url, safe='')}" for url in urls]
    count = len(paths)
    interval = args.interval
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    end = start + args.seconds
    sent = answered = succeeded = errors = 0
    lags: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def probe(path: str) -> None:
        nonlocal answered, succeeded, errors
        try:
            status, body = await pool.get(path, args.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
            return
        answered += 1
        if status == 200 and b"\nprobe_success 1" in body:
            succeeded += 1

    # Slot k of the schedule is target k % count at start + k * interval / count.
    step = interval / count
    k = 0
    while True:
        due = start + k * step
        if due >= end:
            break
        now = loop.time()
        if due > now:
            # Wake at most every 5 ms and fire what is due: Prometheus jitters more than that.
            await asyncio.sleep(max(0.005, min(due - now, 0.5)))
            continue
        # Fire every slot already due (a burst when the loop is late), bounded per tick.
        fired = 0
        while fired < 5000:
            due = start + k * step
            if due > now or due >= end:
                break
            lags.append(now - due)
            task = loop.create_task(probe(paths[k % count]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            k += 1
            fired += 1
    if tasks:
        await asyncio.wait(set(tasks), timeout=args.timeout + 1)
    pool.close()
    lags.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "probes_sent": sent,
        "probes_answered": answered,
        "probes_succeeded": succeeded,
        "probes_errors": errors,
        "probes_unfinished": sum(1 for task in tasks if not task.done()),
        "seconds": round(loop.time() - start, 3),
        "dispatch_lag_seconds": {
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": lags[-1] if lags else None,
        },
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "loop": args.loop_name,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exporter-port", type=int, required=True)
    parser.add_argument("--targets-file", required=True, help="one target URL a line")
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--module", default="http_2xx")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=256, help="keep-alive connections at most")
    args = parser.parse_args(argv)
    args.seconds = min(max(args.seconds, 0.1), 4 * 3600)
    args.loop_name = install_fast_loop()
    started = time.monotonic()
    result = asyncio.run(run(args))
    result["wall_seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
