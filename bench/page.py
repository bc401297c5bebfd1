"""The live page's figures: load in chromium, update latency, and the checking loop's lag with
open event streams. Prints them; asserts nothing about speed.

    .venv/bin/python -m bench.page                          # 1, 1,000 and 10,000 targets
    .venv/bin/python -m bench.page --sizes 1000 --streams 0,10 --lag-seconds 10

Per size, our monitor (a subprocess) checks that many farm targets every --interval seconds:
- **load**: chromium (Debian's, driven over DevTools, tests/browser.py) opens the page
  --loads times: first contentful paint, the moment the first row is in the DOM, the
  DOM's element count; and GET /api/status (gzip, no history) timed from here, five
  requests more than a second apart, so each is a build of its own (median).
- **update**: --victims targets are made to fail at the farm (503) one after another, with
  failure_threshold 1; for each, the time from the check that failed (the row's last_check,
  the monitor's clock) to the row turning red on the open page (the browser's clock; the
  same machine), and from the flip at the farm to red (which adds the wait for the check).
- **lag** (the largest size only): after --lag-seconds of quiet, the monitor's own schedule
  lag p50/p99 over the last --lag-seconds (its window is the last 20,000 checks: make the
  phase at least that long) with 0, 10 and 100 open /api/events streams, each read by a
  client here; the max is since the monitor started.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench.context import bench_context
from bench.loopback import http, http_json
from bench.monitor_process import MonitorProcess, start_monitor, target_name
from bench.options import add_monitor_options
from tests.browser import CHROMIUM, Chromium

# Recorded by the page itself from its first moment (a DevTools script runs before the page's).
FIRST_ROW_PROBE = """
window.__firstRowAt = null;
new MutationObserver((changes, observer) => {
  if (document.querySelector('#target-rows tr.row')) {
    window.__firstRowAt = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
# Resolves when ``name``'s row is red: the browser's time then and the row's check time (ms).
RED_PROBE = """
((name) => new Promise((resolve) => {
  const selector = `#target-rows tr.row.down[data-target="${name}"]`;
  const done = () => {
    const row = document.querySelector(selector);
    if (!row) return false;
    const ts = row.querySelector('td.c-checked [data-ts]');
    resolve({at: Date.now(), checked: ts ? Number(ts.dataset.ts) : null});
    return true;
  };
  if (done()) return;
  const observer = new MutationObserver(() => { if (done()) observer.disconnect(); });
  const options = {childList: true, subtree: true, attributes: true};
  observer.observe(document.getElementById('target-rows'), options);
}))"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,1000,10000", help="comma-separated target counts")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a target's checks")
    parser.add_argument("--loads", type=int, default=3, help="page loads per size")
    parser.add_argument("--victims", type=int, default=3, help="targets made to fail per size")
    parser.add_argument("--streams", default="0,10,100", help="open event streams per lag phase")
    parser.add_argument("--lag-seconds", type=float, default=25.0, help="each lag phase, seconds")
    add_monitor_options(parser)
    parser.set_defaults(threshold=1)
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
        args.streams = [int(s) for s in args.streams.split(",")]
    except ValueError:
        parser.error("--sizes and --streams: comma-separated whole numbers")
    if not args.sizes or min(args.sizes) < 1 or max(args.sizes) > 99_999:
        parser.error("--sizes: from 1 to 99,999 targets")
    if min(args.streams) < 0 or max(args.streams) > 100:
        parser.error("--streams: from 0 to 100 (the monitor's cap)")
    if not CHROMIUM.exists():
        parser.error(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return args


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def timed_status(monitor: MonitorProcess) -> tuple[float, int]:
    """Seconds for one GET /api/status with gzip, and the bytes that came over the wire."""
    request = urllib.request.Request(monitor.url("/api/status"), headers={"Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read()
    elapsed = time.perf_counter() - started
    gzip.decompress(body)
    return elapsed, len(body)


async def all_checked(monitor: MonitorProcess, size: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(monitor.status)
        if (
            status
            and status["monitor"]["targets_unknown"] == 0
            and status["monitor"]["targets_total"] == size
        ):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"not every target was checked within {timeout:g} s")


async def page_loads(monitor: MonitorProcess, loads: int) -> dict[str, Any]:
    paints, rows, nodes = [], [], []
    async with Chromium(1280, 900) as browser:
        await browser.call("Page.addScriptToEvaluateOnNewDocument", source=FIRST_ROW_PROBE)
        for _ in range(loads):
            await browser.call("Network.enable")
            await browser.call("Network.setCacheDisabled", cacheDisabled=True)
            await browser.open(monitor.url("/"))
            first_row = await browser.wait_for("window.__firstRowAt", timeout=60, what="the first row")
            paint = await browser.wait_for(
                "(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime",
                what="first contentful paint",
            )
            paints.append(float(paint))
            rows.append(float(first_row))
            nodes.append(int(await browser.evaluate("document.getElementsByTagName('*').length")))
    return {"first_paint_ms": median(paints), "first_row_ms": median(rows), "dom_elements": max(nodes)}


async def update_latency(
    monitor: MonitorProcess, farm_control: Any, victims: Sequence[int]
) -> dict[str, Any]:
    from_check, from_flip = [], []
    async with Chromium(1280, 900) as browser:
        await browser.open(monitor.url("/"))
        await browser.wait_for(
            "document.getElementById('connection').textContent === 'live' && "
            "!!document.querySelector('#target-rows tr.row')",
            timeout=60,
            what="the page live",
        )
        for victim in victims:
            name = target_name(victim)
            watching = asyncio.ensure_future(browser.evaluate(f"{RED_PROBE}({name!r})"))
            flipped = float((http_json("POST", f"{farm_control(victim)}/_fail/{victim}?mode=503") or {})["t"])
            async with asyncio.timeout(120):
                red = await watching
            if red["checked"] is not None:
                from_check.append(red["at"] - red["checked"])
            from_flip.append(red["at"] - flipped * 1000)
            http("POST", f"{farm_control(victim)}/_ok/{victim}")
    return {
        "check_to_red_ms": median(from_check),
        "check_to_red_max_ms": max(from_check) if from_check else None,
        "flip_to_red_ms": median(from_flip),
    }


async def read_stream(session: aiohttp.ClientSession, url: str, counts: list[int], index: int) -> None:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as answer:
        if answer.status != 200:
            raise RuntimeError(f"/api/events answered {answer.status}")
        async for line in answer.content:
            if line.startswith(b"event: "):
                counts[index] += 1


async def lag_phase(monitor: MonitorProcess, streams: int, seconds: float) -> dict[str, Any]:
    counts = [0] * streams
    async with aiohttp.ClientSession() as session:
        readers = [
            asyncio.ensure_future(read_stream(session, monitor.url("/api/events"), counts, i))
            for i in range(streams)
        ]
        await asyncio.sleep(seconds)
        status = await asyncio.to_thread(monitor.status)
        for reader in readers:
            reader.cancel()
        failed = [
            r for r in await asyncio.gather(*readers, return_exceptions=True) if isinstance(r, Exception)
        ]
        # The monitor notices a stream's client gone within a second: free the slots first.
        await asyncio.sleep(2.0)
    lag = (status or {}).get("monitor", {}).get("schedule_lag_seconds", {})
    return {
        "streams": streams,
        "lag_p50_ms": None if lag.get("p50") is None else lag["p50"] * 1000,
        "lag_p99_ms": None if lag.get("p99") is None else lag["p99"] * 1000,
        "lag_max_ms": None if lag.get("max") is None else lag["max"] * 1000,
        "events_per_stream": median(counts) if counts else None,
        "stream_errors": len(failed),
    }


async def measure_size(ctx: Any, size: int, args: argparse.Namespace, lag: bool) -> dict[str, Any]:
    monitor = start_monitor(ctx, f"page-{size}", size, args.interval)
    try:
        await all_checked(monitor, size, args.interval * 3 + 30)
        status_times = []
        for _ in range(5):
            # Past the answer cache's second: each request waits for a build of its own.
            await asyncio.sleep(1.1)
            status_times.append(await asyncio.to_thread(timed_status, monitor))
        figures: dict[str, Any] = {
            "size": size,
            "status_ms": median([t * 1000 for t, _ in status_times]),
            "status_bytes": status_times[-1][1],
        }
        figures.update(await page_loads(monitor, args.loads))
        step = max(1, size // max(1, args.victims))
        victims = list(range(0, size, step))[: args.victims]
        figures.update(
            await update_latency(monitor, lambda i: f"http://127.0.0.1:{ctx.farm.port_for(i)}", victims)
        )
        if lag:
            figures["lag"] = []
            # The browser's work above has ended; let the lag window forget it.
            await asyncio.sleep(args.lag_seconds)
            for streams in args.streams:
                # A phase as long as the monitor's lag window, so each reading is its own.
                figures["lag"].append(await lag_phase(monitor, streams, args.lag_seconds))
        return figures
    finally:
        ctx.children.stop(monitor.proc, grace=15)


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"bench.page: interval {args.interval:g} s, failure_threshold {args.threshold}, chromium {CHROMIUM}",
        "",
        "| targets | /api/status (gzip) | first paint | first row | DOM elements "
        "| check → red (median / max) | farm flip → red |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {ms(r['status_ms'])}, {r['status_bytes']:,} B | {ms(r['first_paint_ms'])} | "
            f"{ms(r['first_row_ms'])} | {r['dom_elements']:,} | {ms(r['check_to_red_ms'])} / "
            f"{ms(r['check_to_red_max_ms'])} | {ms(r['flip_to_red_ms'])} |"
        )
    for r in results:
        if "lag" not in r:
            continue
        lines += [
            "",
            f"Schedule lag at {r['size']:,} targets every {args.interval:g} s, "
            f"each over {args.lag_seconds:g} s (max: since the monitor started):",
            "",
            "| open streams | lag p50 | lag p99 | lag max | events per stream | stream errors |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for phase in r["lag"]:
            lines.append(
                f"| {phase['streams']} | {ms(phase['lag_p50_ms'])} | {ms(phase['lag_p99_ms'])} | "
                f"{ms(phase['lag_max_ms'])} | {_count(phase['events_per_stream'])} | "
                f"{phase['stream_errors']} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    with bench_context(args, max(args.sizes)) as ctx:
        for size in args.sizes:
            print(f"measuring {size:,} targets ...", file=sys.stderr, flush=True)
            results.append(asyncio.run(measure_size(ctx, size, args, lag=size == max(args.sizes))))
    print(report(results, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
