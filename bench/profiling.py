"""py-spy over our monitor's steady window (--profile DIR): where its CPU goes."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.pyspy_top import summarise


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def start_profiler(ctx: Context, pid: int, name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy record over the steady window (--profile DIR); None when not asked for."""
    args = ctx.args
    if not args.profile:
        return None
    binary = py_spy()
    if binary is None:
        print("py-spy is not installed; to profile: .venv/bin/pip install py-spy", flush=True)
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"{name}.txt"
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(args.duration)))]
    argv += ["--rate", str(args.profile_rate), "--format", "raw", "-o", str(out)]
    # --native needs to stop the process for each sample; without it, py-spy reads it running.
    argv.append("--native" if args.profile_native else "--nonblocking")
    if args.profile_gil:
        argv += ["--gil", "--threads"]
    with (args.profile / f"{name}.log").open("wb") as log:
        proc = ctx.children.start(argv, stdout=log, stderr=subprocess.STDOUT)
    return proc, out


def finish_profiler(
    ctx: Context, profiler: tuple[subprocess.Popen[bytes], Path] | None
) -> dict[str, Any] | None:
    if profiler is None:
        return None
    proc, out = profiler
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=ctx.args.duration + 60)
    ctx.children.stop(proc, grace=5)
    if not out.is_file():
        return {"file": str(out), "error": "py-spy wrote nothing (see the .log beside it)"}
    summary = summarise(out.read_text(), top=12)
    return {"file": str(out), **summary}
