"""What the figures were measured on: the machine, the tools' versions, the monitor's commit."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.children import ROOT

APT_HINT = "apt-get install prometheus-blackbox-exporter monit"


def tool_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    exporter = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    found["blackbox"] = exporter
    found["monit"] = shutil.which("monit")
    return found


def version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    match = re.search(r"version (\S+)", text)
    return match.group(1) if match else (text.splitlines()[0] if text else None)


def monitor_commit(monitor: Path = ROOT / "monitor_server.py") -> str | None:
    """The commit of the checkout ``monitor`` runs from (and whether its code has local changes).

    ``--monitor`` may point into another checkout (e.g. a ``git worktree`` pinned to one commit
    while the main tree is being edited): the figures name that checkout's commit."""
    checkout = str(monitor.resolve().parent)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run(
            ["git", "-C", checkout, "status", "--porcelain", "--", "keepalive", "monitor_server.py"],
            capture_output=True,
        )
        if head.returncode == 0:
            return head.stdout.decode().strip() + (" (+ local changes)" if dirty.stdout.strip() else "")
    return None


def machine_info(tools: dict[str, str | None], monitor: Path) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    versions: dict[str, str | None] = {}
    for module in ("aiohttp", "uvloop"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:
            versions[module] = None
    if tools.get("blackbox"):
        versions["blackbox_exporter"] = version_of([str(tools["blackbox"]), "--version"])
    if tools.get("monit"):
        versions["monit"] = version_of([str(tools["monit"]), "-V"])
    commit = monitor_commit(monitor)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "monitor_commit": commit,
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
    }
