"""What every runner gets: the options, the children, a working directory, the farm, the fake Bot API."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.children import Children, raise_on_sigterm, read_ready_line
from bench.farm_control import Farm, start_farm


@dataclass
class Context:
    """The set-up every run shares: options, children, working directory, farm, fake Bot API.

    ``tools`` maps each peer to its binary (None: not installed); ``repeat`` is the round number,
    so each run gets a working directory of its own."""

    args: argparse.Namespace
    children: Children
    tmp: Path
    farm: Farm
    telegram_port: int
    tools: dict[str, str | None] = field(default_factory=dict)
    repeat: int = 0


def free_port() -> int:
    """A loopback port free right now (for a server that cannot report the one it took)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_telegram(children: Children) -> int:
    """Start the loopback fake Bot API; returns its port."""
    proc = children.start_helper("fake_telegram", stdout=subprocess.PIPE)
    return int(read_ready_line(proc, 20)["port"])


@contextlib.contextmanager
def bench_context(args: argparse.Namespace, farm_targets: int) -> Iterator[Context]:
    """The farm, the fake Bot API and a working directory; everything stopped and removed after.

    SIGTERM and SIGHUP become SystemExit first, so even a killed bench stops its children."""
    raise_on_sigterm()
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="keepalive-bench-"))
    try:
        farm = start_farm(children, args.farm_procs, args.farm_ports, farm_targets)
        yield Context(args, children, tmp, farm, start_telegram(children))
    finally:
        children.close()
        if args.keep_tmp:
            print(f"working directory kept: {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
