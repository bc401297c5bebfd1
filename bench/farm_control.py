"""The target farm seen from the bench: start it, open a measuring window, read its counters.

The farm (bench/farm.py) runs in its own processes; this side only talks to it over loopback HTTP.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.children import Children, read_ready_line
from bench.loopback import http, http_json
from bench.procfs import sample_cpu


@dataclass
class Farm:
    procs: list[subprocess.Popen[bytes]]
    targets: int
    ports: list[int]
    port_owner: dict[int, subprocess.Popen[bytes]]

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port_for(index)}/t/{index}"

    def port_for(self, index: int) -> int:
        return self.ports[index % len(self.ports)]

    def control_ports(self) -> list[int]:
        """One port per farm process (each process keeps its own counters)."""
        seen: dict[int, int] = {}
        for port, proc in self.port_owner.items():
            seen.setdefault(proc.pid, port)
        return list(seen.values())

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]


def start_farm(children: Children, procs: int, ports_per_proc: int, targets: int) -> Farm:
    started: list[subprocess.Popen[bytes]] = []
    all_ports: list[int] = []
    owner: dict[int, subprocess.Popen[bytes]] = {}
    for _ in range(procs):
        ports = ",".join(["0"] * ports_per_proc)
        proc = children.start_helper(
            "farm", "--ports", ports, "--targets", str(targets), stdout=subprocess.PIPE
        )
        ready = read_ready_line(proc, 20)
        started.append(proc)
        for port in ready["ports"]:
            all_ports.append(int(port))
            owner[int(port)] = proc
    return Farm(started, targets, all_ports, owner)


def farm_start_window(farm: Farm, interval: float) -> None:
    for port in farm.control_ports():
        http("POST", f"http://127.0.0.1:{port}/_window?interval={interval}")


def farm_stats(farm: Farm) -> dict[str, Any]:
    """Merge every farm process's window: requests, seconds, and per-target gaps."""
    requests = seen = 0
    seconds = 0.0
    gaps: list[float] = []
    for port in farm.control_ports():
        data = http_json("GET", f"http://127.0.0.1:{port}/_stats", timeout=30)
        if not data:
            continue
        window = data["window"]
        requests += int(window["requests"])
        seen += int(window["targets_seen"])
        seconds = max(seconds, float(window["seconds"]))
        gaps.extend(float(gap) for gap in window["gaps"])
    return {"requests": requests, "targets_seen": seen, "seconds": seconds, "gaps": gaps}


def farm_ceiling(children: Children, farm: Farm, seconds: float) -> dict[str, Any]:
    """The farm's own ceiling with fresh connections, driven by bench/loadgen.py."""
    ports = ",".join(str(port) for port in farm.ports)
    farm0 = [sample_cpu(p, tree=False) for p in farm.pids()]
    targets = str(min(farm.targets, 10_000))
    argv = ["--ports", ports, "--targets", targets, "--seconds", str(seconds)]
    proc = children.start_helper("loadgen", *argv, stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        children.stop(proc, grace=2)
    farm1 = [sample_cpu(p, tree=False) for p in farm.pids()]
    load = json.loads(out.decode().strip().splitlines()[-1])
    cpu = sum(b.cpu - a.cpu for a, b in zip(farm0, farm1, strict=True))
    wall = max(b.wall - a.wall for a, b in zip(farm0, farm1, strict=True))
    farm_cores = cpu / wall  # cores' worth of CPU the farm processes used
    rps = float(load["requests_per_second"])
    return {
        "requests_per_second": rps,
        "errors": load["errors"],
        "farm_cpu_percent": round(100 * cpu / wall, 1),
        "loadgen_cpu_percent": round(100 * float(load["cpu_seconds"]) / float(load["seconds"]), 1),
        "farm_cpu_ms_per_request": round(1000 * cpu / max(1, int(load["requests"])), 4),
        # Requests per core-second of farm CPU at the measured cost: the ceiling per farm core.
        "estimated_ceiling_per_core": round(rps / max(farm_cores, 0.01)),
        "farm_saturated": farm_cores >= 0.95 * len(farm.procs),
        "farm_processes": len(farm.procs),
    }
