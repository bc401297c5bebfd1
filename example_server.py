#!/usr/bin/env python3
"""An example server watched by the Keep-Alive Monitor: a pretend game server with a /health.

    python example_server.py [--port 5004] [--host 127.0.0.1]

It simulates players connecting, leaving and chatting, and exposes ``GET /health`` through
``health_endpoint.HealthEndpoint`` with its counters (``clients``, ``messages_total``, ...).
SIGTERM or Ctrl-C stops it cleanly (exit 0). ``kill -USR1 <pid>`` toggles a "degraded" status,
so the monitor sees a failing target while the process stays up; stopping the server shows
a "connection refused" outage instead.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from health_endpoint import HealthEndpoint

TICK_SECONDS = 1.0


@dataclass
class FakeGame:
    """The pretend game: a few counters that move a little every tick."""

    rng: random.Random = field(default_factory=random.Random)
    clients: int = 0
    peak_clients: int = 0
    messages_total: int = 0
    games_played: int = 0
    degraded: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def tick(self) -> None:
        with self._lock:
            self.clients = max(0, self.clients + self.rng.choice((-1, 0, 0, 1, 1, 2)))
            self.peak_clients = max(self.peak_clients, self.clients)
            self.messages_total += self.rng.randint(0, 3 * self.clients)
            if self.clients >= 2 and self.rng.random() < 0.1:
                self.games_played += 1

    def toggle_degraded(self) -> None:
        with self._lock:
            self.degraded = not self.degraded

    def health(self) -> dict[str, Any]:
        """Extra fields for GET /health."""
        with self._lock:
            fields: dict[str, Any] = {
                "service": "example-game-server",
                "pid": os.getpid(),
                "clients": self.clients,
                "peak_clients": self.peak_clients,
                "messages_total": self.messages_total,
                "games_played": self.games_played,
            }
            if self.degraded:
                fields["status"] = "degraded"
            return fields


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=5004, help="port for /health (default 5004; 0: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    game = FakeGame()
    stop = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        game.toggle_degraded()
        print(f"example server: status is now {'degraded' if game.degraded else 'ok'}", flush=True)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, on_usr1)

    health = HealthEndpoint(port=args.port, host=args.host, callback=game.health)
    try:
        health.start()
    except OSError as exc:
        print(f"example server: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"example server: listening on {health.url} (PID {os.getpid()})", flush=True)
    try:
        while not stop.wait(TICK_SECONDS):
            game.tick()
    finally:
        health.stop()
    print("example server: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
