"""Monit in the foreground: one ``check host`` per target, its daemon cycle as the interval."""

from __future__ import annotations

import math
import subprocess
import time
from typing import Any

from bench.context import Context
from bench.machine import APT_HINT
from bench.measure import common_figures, steady_window, warmup_for
from bench.monitor_process import target_name


class MonitRunner:
    system = "monit"

    def run(self, ctx: Context, size: int, interval: float) -> dict[str, Any]:
        monit = ctx.tools.get("monit")
        if not monit:
            return {"system": "monit", "skipped": f"not installed: {APT_HINT}"}
        args = ctx.args
        work = ctx.tmp / f"monit-{size}-{ctx.repeat}"
        work.mkdir(parents=True, exist_ok=True)
        cycle = max(1, math.ceil(interval))  # Monit's cycle is a whole number of seconds, at least 1
        timeout = max(1, math.ceil(args.timeout))
        lines = [
            f"set daemon {cycle}",
            f"set logfile {work / 'monit.log'}",
            f"set idfile {work / 'monit.id'}",
            f"set statefile {work / 'monit.state'}",
            f"set pidfile {work / 'monit.pid'}",
            "",
        ]
        for index in range(size):
            lines += [
                f"check host {target_name(index)} with address 127.0.0.1",
                f'  if failed port {ctx.farm.port_for(index)} protocol http request "/t/{index}"'
                f" with timeout {timeout} seconds then alert",
                "",
            ]
        rc = work / "monitrc"
        rc.write_text("\n".join(lines))
        rc.chmod(0o600)
        with (work / "monit.out").open("wb") as log:
            proc = ctx.children.start([monit, "-I", "-c", str(rc)], stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(warmup_for(args, size, float(cycle)))
            if proc.poll() is not None:
                raise RuntimeError(f"monit exited with code {proc.returncode}; see {work / 'monit.out'}")
            cpu0, cpu1, farm = steady_window(ctx, proc.pid, size, float(cycle))
            result = common_figures(size, interval, cpu0, cpu1, farm, proc.pid, farm["requests"])
            result.update(
                {
                    "system": "monit",
                    "daemon_cycle_seconds": cycle,
                    "note": "checks counted by the farm; Monit checks hosts one after another in each cycle",
                }
            )
        finally:
            code, _ = ctx.children.stop(proc, grace=10)
        result["exit_code"] = code
        return result
