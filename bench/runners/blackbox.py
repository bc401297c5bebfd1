"""Prometheus blackbox_exporter, with bench/probe_driver.py playing Prometheus: a probe per target."""

from __future__ import annotations

import json
import math
import subprocess
import time
from typing import Any

from bench.children import wait_until
from bench.context import Context, free_port
from bench.loopback import http
from bench.machine import APT_HINT
from bench.measure import common_figures, steady_window, warmup_for
from bench.procfs import cpu_between, sample_cpu


class BlackboxRunner:
    system = "blackbox"

    def run(self, ctx: Context, size: int, interval: float) -> dict[str, Any]:
        exporter = ctx.tools.get("blackbox")
        if not exporter:
            return {"system": "blackbox", "skipped": f"not installed: {APT_HINT}"}
        args = ctx.args
        work = ctx.tmp / f"blackbox-{size}-{ctx.repeat}"
        work.mkdir(parents=True, exist_ok=True)
        config = work / "blackbox.yml"
        timeout = max(1, math.ceil(args.timeout))
        # The same judgement as ours: HTTP 2xx and "status": "ok" in the body.
        config.write_text(
            "modules:\n"
            "  http_2xx:\n"
            "    prober: http\n"
            f"    timeout: {timeout}s\n"
            "    http:\n"
            "      preferred_ip_protocol: ip4\n"
            "      ip_protocol_fallback: false\n"
            "      fail_if_body_not_matches_regexp:\n"
            '        - \'"status":\\s*"ok"\'\n'
        )
        urls = work / "targets.txt"
        urls.write_text("".join(ctx.farm.url(i) + "\n" for i in range(size)))
        port = free_port()
        with (work / "exporter.log").open("wb") as log:
            proc = ctx.children.start(
                [
                    exporter,
                    f"--config.file={config}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        driver: subprocess.Popen[bytes] | None = None
        try:
            if not wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/-/healthy")[0] == 200, 30, 0.1):
                raise RuntimeError("blackbox_exporter did not start")
            warmup = warmup_for(args, size, interval)
            seconds = warmup + args.duration + 1.0
            driver = ctx.children.start_helper(
                "probe_driver",
                f"--exporter-port={port}",
                f"--targets-file={urls}",
                f"--interval={interval}",
                f"--seconds={seconds}",
                f"--timeout={timeout + 5}",
                stdout=subprocess.PIPE,
            )
            time.sleep(warmup)
            driver0 = sample_cpu(driver.pid)
            cpu0, cpu1, farm = steady_window(ctx, proc.pid, size, interval)
            driver1 = sample_cpu(driver.pid)
            result = common_figures(size, interval, cpu0, cpu1, farm, proc.pid, farm["requests"])
            out, _ = driver.communicate(timeout=seconds + timeout + 30)
            summary = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
            driver_cpu, driver_wall = cpu_between(driver0, driver1)
            result.update(
                {
                    "system": "blackbox",
                    "driver": summary,
                    "driver_cpu_percent": round(100 * driver_cpu / driver_wall, 3) if driver_wall else None,
                    "note": "checks counted by the farm; the probe driver's CPU is not included",
                }
            )
        finally:
            if driver is not None:
                ctx.children.stop(driver, grace=5)
            code, _ = ctx.children.stop(proc, grace=10)
        result["exit_code"] = code
        return result
