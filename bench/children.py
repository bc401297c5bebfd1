"""The bench's child processes: started so they die with the bench, stopped on every exit path."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
# The repository root: helpers run as ``python -m bench.<name>`` from here.
ROOT = Path(__file__).resolve().parent.parent


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGKILL this child when the bench dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setsid()


class Children:
    """Every subprocess the bench starts; ``close()`` stops them all (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdout: Any = subprocess.DEVNULL,
        stderr: Any = subprocess.DEVNULL,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            # Safe while no other thread runs: bench.stress starts its threads after its children.
            preexec_fn=_die_with_parent,
        )
        self.procs.append(proc)
        return proc

    def start_helper(
        self, module: str, *args: str, stdout: Any = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        """Start one of the bench's helpers (``bench.<module>``) with this interpreter."""
        return self.start([sys.executable, "-m", f"bench.{module}", *args], stdout=stdout, cwd=ROOT)

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM, wait up to ``grace`` s, then SIGKILL. Returns (exit code, seconds to stop)."""
        began = time.monotonic()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode, time.monotonic() - began

    def close(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc, grace=5.0)


def raise_on_sigterm() -> None:
    """Turn SIGTERM (and SIGHUP) into SystemExit so ``finally`` blocks stop the children."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def read_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Read the one JSON line a helper prints on stdout when it listens; raise if it does not."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buffer += chunk
            if b"\n" in buffer:
                line = buffer.split(b"\n", 1)[0]
                data: dict[str, Any] = json.loads(line)
                return data
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"helper {proc.args!r} did not report ready (exit code {proc.poll()})")
