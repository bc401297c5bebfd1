"""The helper processes' event loop: uvloop when installed, and a stop when the parent goes away."""

from __future__ import annotations

import asyncio
import os
import time


def install_fast_loop() -> str:
    """Use uvloop when it is installed; returns the loop's name for the report."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, max_seconds: float) -> None:
    """In a helper: set ``stop`` when the parent goes away or after ``max_seconds``."""
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds

    def check() -> None:
        if os.getppid() != parent or time.monotonic() > deadline:
            stop.set()
        else:
            loop.call_later(1.0, check)

    loop.call_later(1.0, check)
