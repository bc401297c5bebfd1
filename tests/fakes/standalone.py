"""Run a fake server as a standalone process (``python -m tests.fakes.<name>``) until SIGTERM
or Ctrl-C, for trying the monitor by hand against it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any


def serve_until_signalled(server: AbstractContextManager[Any], banner: Callable[[], str]) -> int:
    """Start ``server``, print ``banner()`` once it listens, stop it on SIGTERM/SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with server:
        print(banner(), flush=True)
        stop.wait()
    return 0
