"""Shared helpers for the bench: /proc readings, loopback HTTP calls, child-process hygiene.

Everything here is stdlib only, so the helper processes start fast and the bench needs no
package the monitor does not already install.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

# No proxies: every request of the bench goes to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def install_fast_loop() -> str:
    """Use uvloop when it is installed; returns the loop's name for the report."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """One plain HTTP call to a loopback server; returns (status, body), status 0 on no answer."""
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (OSError, ValueError):
        return 0, b""


def http_json(method: str, url: str, timeout: float = 10.0) -> Any:
    """An HTTP call whose 200 answer is JSON; None on any failure."""
    status, body = http(method, url, timeout=timeout)
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


# --------------------------------------------------------------------------- /proc readings


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid's living children, grandchildren, ... (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_times(pid: int, tree: bool = True) -> tuple[float, float]:
    """(utime, stime) of pid (and, with tree, of its living descendants), in seconds."""
    user = system = 0
    for each in [pid, *(descendants(pid) if tree else [])]:
        fields = _stat_fields(each)
        if fields is not None:
            user += int(fields[11])
            system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime + stime of pid (and, with tree, of its living descendants), in seconds."""
    return sum(cpu_times(pid, tree))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS of one process, in KiB (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def peak_rss_mib(pid: int, tree: bool = True) -> float:
    """Sum of VmHWM over pid and its descendants, in MiB."""
    pids = [pid, *(descendants(pid) if tree else [])]
    return sum(memory_kib(each).get("VmHWM", 0) for each in pids) / 1024


@dataclass
class CpuSample:
    wall: float
    cpu: float
    user: float = 0.0
    system: float = 0.0


def sample_cpu(pid: int, tree: bool = True) -> CpuSample:
    user, system = cpu_times(pid, tree)
    return CpuSample(time.monotonic(), user + system, user, system)


def cpu_between(start: CpuSample, end: CpuSample) -> tuple[float, float]:
    """(CPU seconds used, wall seconds elapsed) between two samples."""
    return end.cpu - start.cpu, end.wall - start.wall


# --------------------------------------------------------------------------- child processes


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
            preexec_fn=_die_with_parent,  # the bench starts no threads, so this is safe
        )
        self.procs.append(proc)
        return proc

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


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)
