"""Run monitor_server.py with its garbage-collector pauses logged (an experiment, not a fix).

    BENCH_GC_LOG=/tmp/gc.log .venv/bin/python -m bench.run --sizes 10000 --duration 30 \
        --peers none --no-alert --ceiling-seconds 0 --monitor bench/gc_probe.py
    BENCH_GC_LOG=/tmp/gc-frozen.log BENCH_GC_FREEZE_AFTER=14 .venv/bin/python -m bench.run ...

Writes one line per collection: ``<epoch> gen<N> <ms>ms collected=<n>``. With
BENCH_GC_FREEZE_AFTER=S it calls ``gc.freeze()`` S seconds after start (after the first round
of checks), to measure what freezing the long-lived objects would save. The monitor's code is
not changed: this file only wraps it.
"""

from __future__ import annotations

import gc
import os
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    log = open(os.environ.get("BENCH_GC_LOG", "gc_probe.log"), "w", buffering=1)  # noqa: SIM115
    started: dict[int, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        generation = int(info["generation"])
        if phase == "start":
            started[generation] = time.perf_counter()
            return
        pause = time.perf_counter() - started.get(generation, time.perf_counter())
        log.write(f"{time.time():.3f} gen{generation} {pause * 1000:.2f}ms collected={info['collected']}\n")

    gc.callbacks.append(on_gc)
    freeze_after = os.environ.get("BENCH_GC_FREEZE_AFTER")
    if freeze_after:

        def freeze_later() -> None:
            time.sleep(float(freeze_after))
            gc.freeze()
            log.write(f"{time.time():.3f} FROZEN {gc.get_freeze_count()}\n")

        threading.Thread(target=freeze_later, daemon=True).start()
    sys.path.insert(0, str(ROOT))
    sys.argv[0] = str(ROOT / "monitor_server.py")
    runpy.run_path(str(ROOT / "monitor_server.py"), run_name="__main__")


if __name__ == "__main__":
    main()
