"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile: where the CPU goes.

    python -m bench.pyspy_top profile.txt [--top 25]

Prints, as % of the non-idle samples: the functions with the most *self* time (the frame that
was running), the most *inclusive* time (anywhere on the stack), and a split by area (aiohttp,
aiohappyeyeballs, asyncio, the monitor's own keepalive package, json, logging, ...).
A leaf ``Runner.run`` sample is time inside the event loop's C code (uvloop: epoll, transports,
callbacks) with no Python frame above it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# ``thread (0x7f..): MainThread`` (py-spy --threads); the id changes from run to run, the name not.
_THREAD = re.compile(r"^thread \((?P<id>[^)]*)\)(?::\s*(?P<name>.*))?$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")
AREAS = (
    ("aiohappyeyeballs", "aiohappyeyeballs/"),
    ("aiohttp", "aiohttp/"),
    ("prometheus_client", "prometheus_client/"),
    ("yarl/multidict", "yarl/"),
    ("yarl/multidict", "multidict/"),
    ("keepalive", "keepalive/"),
    ("json", "json/"),
    ("logging", "logging/"),
    ("asyncio", "asyncio/"),
    ("ssl", "ssl.py"),
)


def parse(text: str) -> list[tuple[list[tuple[str, str]], int, str]]:
    """Each line ``frame;frame;... count`` → ([(function, file), ...] root first, count, thread).

    ``thread`` is the thread's name when py-spy ran with ``--threads`` (else "")."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        thread = ""
        for raw in stack.split(";"):
            match = _FRAME.match(raw.strip())
            if match is None:
                header = _THREAD.match(raw.strip())
                if header is not None:
                    thread = header["name"]
                continue  # process / thread header frames
            frames.append((match["func"], match["file"]))
        if frames:
            stacks.append((frames, int(count), thread))
    return stacks


def area_of(file: str) -> str:
    for name, marker in AREAS:
        if marker in file:
            return name
    return "other"


def summarise(text: str, top: int = 25) -> dict[str, Any]:
    stacks = parse(text)
    total = sum(count for _, count, _ in stacks) or 1
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for frames, count, thread in stacks:
        if thread:
            threads[thread] += count
        func, file = frames[-1]
        self_time[f"{func} ({file})"] += count
        areas[area_of(file)] += count
        for key in {f"{f} ({p})" for f, p in frames}:
            inclusive[key] += count

    def rows(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self": rows(self_time),
        "inclusive": rows(inclusive),
        "areas": [(name, round(100 * n / total, 1)) for name, n in areas.most_common()],
        "threads": [(name, round(100 * n / total, 1)) for name, n in threads.most_common(top)],
    }


def render(summary: dict[str, Any]) -> str:
    lines = [f"{summary['samples']} non-idle samples", "", "self % (the running frame):"]
    lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["self"]]
    lines += ["", "inclusive % (anywhere on the stack):"]
    lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["inclusive"]]
    lines += ["", "self time by area:"]
    lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["areas"]]
    if summary.get("threads"):
        lines += ["", "by thread (with --profile-gil: who held the GIL):"]
        lines += [f"  {pct:5.1f}  {name}" for name, pct in summary["threads"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profile", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(render(summarise(args.profile.read_text(), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
