"""Scale benchmark: the Keep-Alive Monitor beside Prometheus blackbox_exporter and Monit.

One command (from the repository root):

    .venv/bin/python bench/run.py                      # 1, 100, 1,000, 10,000 targets, 60 s each
    .venv/bin/python bench/run.py --sizes 1000 --interval 5 --duration 30 --peers none

For each size it starts, in turn, our monitor and each installed peer against the same
loopback target farm (bench/farm.py), lets it warm up, then measures a steady window of
--duration seconds: checks/s required and achieved, schedule lag and missed checks, CPU %
and CPU ms per check (utime+stime from /proc over the window only), peak RSS (VmHWM), and for
our monitor the alert latency (one target flipped to failing at a known time until the loopback
fake Bot API, bench/fake_telegram.py, receives the DOWN message naming it).

Peers are used when installed and never installed by the bench:
    apt-get install prometheus-blackbox-exporter monit

Figures are printed (a markdown table at the end) and, with --json, written to
bench/results/. Nothing is asserted: the bench reports, readers judge. Every process the bench
starts is stopped when it ends, on Ctrl-C, on SIGTERM, and (through PR_SET_PDEATHSIG) even when
the bench itself is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    Children,
    CpuSample,
    cpu_between,
    http,
    http_json,
    machine_busy_seconds,
    peak_rss_mib,
    percentile,
    raise_on_sigterm,
    read_ready_line,
    sample_cpu,
    wait_until,
)
from pyspy_top import render, summarise

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
APT_HINT = "apt-get install prometheus-blackbox-exporter monit"
# Default interval per size: the plan (one idle target, then 200 and 1,000 checks/s).
DEFAULT_INTERVALS = {1: 600.0, 100: 5.0, 1000: 5.0, 10000: 10.0}
BOT_TOKEN = "123456:BENCHbenchBENCHbench"
CHAT_ID = "4242"
SETTING_PREFIXES = (
    "TELEGRAM_", "SMTP_", "EMAIL_", "MONITOR_", "HEALTH_", "CHECK_", "FAILURE_", "REQUEST_",
    "REPEAT_", "SUCCESS_", "DIGEST_", "HEARTBEAT_",
)  # fmt: skip
PEERS = ("blackbox", "monit")


# ----------------------------------------------------------------------------- set-up


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


@dataclass
class Context:
    args: argparse.Namespace
    children: Children
    tmp: Path
    farm: Farm
    telegram_port: int
    tools: dict[str, str | None] = field(default_factory=dict)
    repeat: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def helper(name: str) -> list[str]:
    return [sys.executable, str(BENCH / name)]


def start_farm(children: Children, procs: int, ports_per_proc: int, targets: int) -> Farm:
    started: list[subprocess.Popen[bytes]] = []
    all_ports: list[int] = []
    owner: dict[int, subprocess.Popen[bytes]] = {}
    for _ in range(procs):
        argv = [*helper("farm.py"), "--ports", ",".join(["0"] * ports_per_proc), "--targets", str(targets)]
        proc = children.start(argv, stdout=subprocess.PIPE)
        ready = read_ready_line(proc, 20)
        started.append(proc)
        for port in ready["ports"]:
            all_ports.append(int(port))
            owner[int(port)] = proc
    return Farm(started, targets, all_ports, owner)


def start_telegram(children: Children) -> int:
    proc = children.start(helper("fake_telegram.py"), stdout=subprocess.PIPE)
    return int(read_ready_line(proc, 20)["port"])


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


def monitor_commit() -> str | None:
    """The commit the monitor's code is at (and whether keepalive/ has local changes)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "keepalive", "monitor_server.py"],
            capture_output=True,
        )
        if head.returncode == 0:
            return head.stdout.decode().strip() + (" (+ local changes)" if dirty.stdout.strip() else "")
    return None


def machine_info(tools: dict[str, str | None]) -> dict[str, Any]:
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
    commit = monitor_commit()
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


# ----------------------------------------------------------------------------- farm readings


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


def gap_figures(
    gaps: list[float], interval: float, window: float, size: int, seen: int, requests: int
) -> dict[str, Any]:
    """How punctual the poller looked from the targets' side.

    ``late`` is a gap between two checks of one target minus the interval (0 = punctual).
    ``missed`` counts the slots a gap skipped (a gap of 2 intervals = 1 missed) plus, when the
    window spans two intervals or more, targets the poller never reached."""
    late = sorted(gap - interval for gap in gaps)
    skipped = sum(max(0, round(gap / interval) - 1) for gap in gaps)
    if window >= 2 * interval:
        skipped += max(0, size - seen) * max(1, int(window // interval))
    # A poller whose cycle stretches (Monit's sequential checks) skips no slot outright but
    # falls behind the schedule: count the checks it owes over the window as well.
    # (Under 1 % is the window's edges, not a poller falling behind.)
    expected = size * window / interval
    short = round(expected - requests) if window >= interval and requests < 0.99 * expected else 0
    return {
        "late_p50": percentile(late, 50),
        "late_p99": percentile(late, 99),
        "late_max": late[-1] if late else None,
        "missed": max(skipped, short),
        "skipped_slots": skipped,
        "short_of_schedule": short,
        "gaps": len(gaps),
    }


# ----------------------------------------------------------------------------- phases


def targets_toml(ctx: Context, size: int, interval: float) -> Path:
    args = ctx.args
    lines = [
        "[defaults]",
        f"interval = {interval}",
        f"timeout = {args.timeout}",
        f"failure_threshold = {args.threshold}",
        "",
    ]
    for index in range(size):
        lines += ["[[targets]]", f'name = "{target_name(index)}"', f'url = "{ctx.farm.url(index)}"', ""]
    path = ctx.tmp / f"targets-{size}.toml"
    path.write_text("\n".join(lines))
    return path


def target_name(index: int) -> str:
    return f"bench-{index:05d}"


def monitor_env(ctx: Context, size: int, interval: float, http_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    state = ctx.tmp / f"ours-{size}"
    env.update(
        {
            "MONITOR_ENV_FILE": "",
            "MONITOR_TARGETS_FILE": str(targets_toml(ctx, size, interval)),
            "MONITOR_STATE_DIR": str(state / "state"),
            "MONITOR_EVENTS_FILE": str(state / "events.jsonl"),
            "MONITOR_LOG_FILE": str(state / "monitor.log"),
            "MONITOR_PID_FILE": str(state / "monitor.pid"),
            "MONITOR_HTTP_HOST": "127.0.0.1",
            "MONITOR_HTTP_PORT": str(http_port),
            "MONITOR_MAX_CONCURRENCY": str(ctx.args.max_concurrency),
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_CHAT_ID": CHAT_ID,
            "TELEGRAM_API_URL": f"http://127.0.0.1:{ctx.telegram_port}",
            "SMTP_SERVER": "smtp.example.com",
            "DIGEST_AFTER": "1000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def warmup_for(args: argparse.Namespace, size: int, interval: float) -> float:
    if args.warmup is not None:
        return float(args.warmup)
    if interval > 60:
        return 3.0  # an idle configuration: the first checks run at once, then nothing until I
    # One whole interval (the monitor ramps its first round up over at most one interval).
    return interval + 2.0


def alert_bound(args: argparse.Namespace, interval: float) -> float:
    return float(args.threshold * interval + args.timeout + 0.5)


def steady_window(
    ctx: Context, pid: int, size: int, interval: float, tick: Any = None
) -> tuple[CpuSample, CpuSample, dict[str, Any]]:
    """Sample CPU of ``pid`` at the window's start and end, with the farm's window around it."""
    farm_start_window(ctx.farm, interval)
    farm_cpu0 = [sample_cpu(p, tree=False) for p in ctx.farm.pids()]
    busy0 = machine_busy_seconds()
    cpu0 = sample_cpu(pid)
    end = time.monotonic() + ctx.args.duration
    while time.monotonic() < end:
        if tick is not None:
            tick()
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))
    cpu1 = sample_cpu(pid)
    busy1 = machine_busy_seconds()
    farm_cpu1 = [sample_cpu(p, tree=False) for p in ctx.farm.pids()]
    stats = farm_stats(ctx.farm)
    farm_cpu = sum(b.cpu - a.cpu for a, b in zip(farm_cpu0, farm_cpu1, strict=True))
    farm_wall = max((b.wall - a.wall for a, b in zip(farm_cpu0, farm_cpu1, strict=True)), default=1.0)
    stats["cpu_percent"] = round(100 * farm_cpu / farm_wall, 2)
    # Everything busy on the machine (all cores, 200 % = both cores of a 2-core box): shows
    # whether something besides the bench competed for the CPU during the window.
    stats["machine_busy_percent"] = round(100 * (busy1 - busy0) / (cpu1.wall - cpu0.wall), 1)
    stats["cpu_ms_per_request"] = round(1000 * farm_cpu / stats["requests"], 4) if stats["requests"] else None
    return cpu0, cpu1, stats


def common_figures(
    size: int, interval: float, cpu0: CpuSample, cpu1: CpuSample, farm: dict[str, Any], pid: int, checks: int
) -> dict[str, Any]:
    cpu, wall = cpu_between(cpu0, cpu1)
    gaps = gap_figures(farm["gaps"], interval, farm["seconds"], size, farm["targets_seen"], farm["requests"])
    return {
        "size": size,
        "interval": interval,
        "window_seconds": round(wall, 3),
        "checks_per_second_required": round(size / interval, 3),
        "checks_in_window": checks,
        "checks_per_second_achieved": round(checks / wall, 3) if wall else None,
        "farm_requests_per_second": round(farm["requests"] / farm["seconds"], 3) if farm["seconds"] else None,
        "cpu_seconds": round(cpu, 3),
        "cpu_system_share": round((cpu1.system - cpu0.system) / cpu, 3) if cpu else None,
        "cpu_percent": round(100 * cpu / wall, 3) if wall else None,
        "cpu_ms_per_check": round(1000 * cpu / checks, 4) if checks else None,
        "peak_rss_mib": round(peak_rss_mib(pid), 2),
        "farm_observed": gaps,
        "farm_cpu_percent": farm["cpu_percent"],
        "farm_cpu_ms_per_request": farm["cpu_ms_per_request"],
        "machine_busy_percent": farm["machine_busy_percent"],
        "load_average": os.getloadavg()[0],
    }


def find_alert(ctx: Context, name: str, after: float) -> dict[str, Any] | None:
    messages = http_json("GET", f"http://127.0.0.1:{ctx.telegram_port}/_messages") or []
    for message in messages:
        if message["t"] >= after and name in message["text"]:
            found: dict[str, Any] = message
            return found
    return None


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


def run_ours(ctx: Context, size: int, interval: float) -> dict[str, Any]:
    args = ctx.args
    port = free_port()
    env = monitor_env(ctx, size, interval, port)
    state = ctx.tmp / f"ours-{size}"
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "monitor.log"
    status_url = f"http://127.0.0.1:{port}/api/status?history=0"
    commit = monitor_commit()
    spawned = time.monotonic()
    with log_path.open("wb") as log:
        proc = ctx.children.start(
            [sys.executable, str(args.monitor)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        if not wait_until(
            lambda: proc.poll() is not None or http_json("GET", status_url) is not None, 120, 0.2
        ):
            raise RuntimeError("the monitor did not answer /api/status within 120 s")
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the monitor exited with code {proc.returncode}: {tail}")
        startup = time.monotonic() - spawned
        time.sleep(warmup_for(args, size, interval))

        # Alert latency: flip one target at a random moment early in the window.
        bound = alert_bound(args, interval)
        alert: dict[str, Any] = {"bound_seconds": round(bound, 3)}
        do_alert = args.alert and bound <= args.alert_max_wait
        if args.alert and not do_alert:
            alert["skipped"] = f"bound {bound:g} s > --alert-max-wait {args.alert_max_wait:g} s"
        victim = size // 2
        victim_port = ctx.farm.port_for(victim)
        flip_at = time.monotonic() + random.uniform(0.5, max(0.5, min(interval, args.duration / 4)))
        flipped: dict[str, Any] = {}
        found: list[dict[str, Any]] = []

        def tick() -> None:
            """Flip the victim at flip_at; once its DOWN message arrived, make it pass again."""
            if not do_alert or found:
                return
            if not flipped:
                if time.monotonic() >= flip_at:
                    answer = http_json("POST", f"http://127.0.0.1:{victim_port}/_fail/{victim}?mode=503")
                    flipped.update(answer or {"t": time.time()})
                return
            message = find_alert(ctx, target_name(victim), float(flipped["t"]))
            if message is not None:
                found.append(message)
                http("POST", f"http://127.0.0.1:{victim_port}/_ok/{victim}")

        status0 = http_json("GET", status_url, timeout=30)
        log_bytes0 = log_path.stat().st_size
        profiler = start_profiler(ctx, proc.pid, f"ours-{size}-{ctx.repeat}")
        cpu0, cpu1, farm = steady_window(ctx, proc.pid, size, interval, tick)
        profile = finish_profiler(ctx, profiler)
        status1 = http_json("GET", status_url, timeout=30)
        log_bytes1 = log_path.stat().st_size
        if status0 is None or status1 is None:
            raise RuntimeError("the monitor stopped answering /api/status")
        mon0, mon1 = status0["monitor"], status1["monitor"]
        checks = int(mon1["checks_total"]) - int(mon0["checks_total"])
        result = common_figures(size, interval, cpu0, cpu1, farm, proc.pid, checks)
        if do_alert:
            tick()  # a window shorter than the flip delay still flips
            flip_t = float(flipped["t"])
            while True:  # poll at least once, until the bound + 2 s has passed
                tick()
                if found or time.time() > flip_t + bound + 2.0:
                    break
                time.sleep(0.2)
            alert["target"] = target_name(victim)
            if not found:
                alert["latency_seconds"] = None
                alert["note"] = f"no DOWN message within bound + 2 s ({bound + 2:g} s)"
                http("POST", f"http://127.0.0.1:{victim_port}/_ok/{victim}")
            else:
                alert["latency_seconds"] = round(float(found[0]["t"]) - flip_t, 3)
                alert["within_bound"] = alert["latency_seconds"] <= bound
        result.update(
            {
                "system": "ours",
                "monitor_commit": commit,
                "startup_seconds": round(startup, 3),
                "schedule_lag_seconds": mon1["schedule_lag_seconds"],
                "missed_checks": int(mon1["checks_missed_total"]) - int(mon0["checks_missed_total"]),
                "missed_checks_since_start": int(mon1["checks_missed_total"]),
                "targets_up": mon1.get("targets_up"),
                "targets_down": mon1.get("targets_down"),
                "log_bytes_in_window": log_bytes1 - log_bytes0,
                "alert": alert,
            }
        )
        if profile is not None:
            result["profile"] = profile
    finally:
        code, stop_seconds = ctx.children.stop(proc, grace=15)
    result["exit_code"] = code
    result["stop_seconds"] = round(stop_seconds, 3)
    return result


def run_blackbox(ctx: Context, size: int, interval: float) -> dict[str, Any]:
    exporter = ctx.tools.get("blackbox")
    if not exporter:
        return {"system": "blackbox", "skipped": f"not installed: {APT_HINT}"}
    args = ctx.args
    work = ctx.tmp / f"blackbox-{size}"
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
        driver = ctx.children.start(
            [
                *helper("probe_driver.py"),
                f"--exporter-port={port}",
                f"--targets-file={urls}",
                f"--interval={interval}",
                f"--seconds={seconds}",
                f"--timeout={timeout + 5}",
            ],
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


def run_monit(ctx: Context, size: int, interval: float) -> dict[str, Any]:
    monit = ctx.tools.get("monit")
    if not monit:
        return {"system": "monit", "skipped": f"not installed: {APT_HINT}"}
    args = ctx.args
    work = ctx.tmp / f"monit-{size}"
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


def farm_ceiling(ctx: Context) -> dict[str, Any]:
    """The farm's own ceiling with fresh connections, driven by bench/loadgen.py."""
    ports = ",".join(str(port) for port in ctx.farm.ports)
    farm0 = [sample_cpu(p, tree=False) for p in ctx.farm.pids()]
    argv = [*helper("loadgen.py"), "--ports", ports, "--targets", str(min(ctx.farm.targets, 10_000))]
    proc = ctx.children.start([*argv, "--seconds", str(ctx.args.ceiling_seconds)], stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=ctx.args.ceiling_seconds + 60)
    finally:
        ctx.children.stop(proc, grace=2)
    farm1 = [sample_cpu(p, tree=False) for p in ctx.farm.pids()]
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
        "farm_saturated": farm_cores >= 0.95 * len(ctx.farm.procs),
        "farm_processes": len(ctx.farm.procs),
    }


# ----------------------------------------------------------------------------- report


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** (-digits):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or peer == 0:
        return "—"
    return f"{ours / peer:.2f}×"


def _cost(result: dict[str, Any]) -> float:
    value = result.get("cpu_ms_per_check")
    if value is None:
        value = result.get("cpu_percent")
    return float(value) if value is not None else math.inf


def representative(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (size, interval, system): the median run by CPU cost, with the others' range.

    A single run is its own representative; skipped and failed runs stand only when nothing of
    that kind ran."""
    groups: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault((result.get("size"), result.get("interval"), result["system"]), []).append(result)
    rows = []
    for runs in groups.values():
        good = sorted((r for r in runs if "skipped" not in r and "error" not in r), key=_cost)
        if not good:
            rows.append(runs[0])
            continue
        row = dict(good[(len(good) - 1) // 2])
        if len(good) > 1:
            costs = [r["cpu_ms_per_check"] for r in good if r.get("cpu_ms_per_check") is not None]
            row["runs"] = len(good)
            row["cpu_ms_per_check_range"] = [min(costs), max(costs)] if costs else None
            row["cpu_percent_range"] = [
                min(r["cpu_percent"] for r in good),
                max(r["cpu_percent"] for r in good),
            ]
            lats = [
                r["alert"]["latency_seconds"] for r in good if (r.get("alert") or {}).get("latency_seconds")
            ]
            if lats:
                row["alert_latency_range"] = [min(lats), max(lats)]
        rows.append(row)
    return rows


def with_range(value: Any, span: list[float] | None, digits: int) -> str:
    text = fmt(value, digits)
    if span and span[0] != span[1]:
        text += f" ({fmt(span[0], digits)}–{fmt(span[1], digits)})"
    return text


def shortfall(r: dict[str, Any]) -> int:
    """Checks a system owed over its window, by the farm's count (0 under 1 %: window edges)."""
    rate, window = r.get("farm_requests_per_second"), r.get("window_seconds")
    if rate is None or not window or window < r["interval"]:
        return 0
    expected = r["size"] * window / r["interval"]
    served = rate * window
    return round(expected - served) if served < 0.99 * expected else 0


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| targets | interval s | system | checks/s required | achieved | sched lag p50 / p99 / max s "
        "| missed | farm-seen late p99 s | missed (farm) | CPU % | CPU ms/check | peak RSS MiB "
        "| alert latency s (bound) | machine busy % |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or f"error: {r.get('error')}"
            rows.append(f"| {fmt(r.get('size'))} | {fmt(r.get('interval'), 1)} | {r['system']} | {why} |")
            continue
        lag = r.get("schedule_lag_seconds")
        lag_text = "—" if not lag else " / ".join(fmt(lag.get(k), 3) for k in ("p50", "p99", "max"))
        alert = r.get("alert") or {}
        if "latency_seconds" in alert:
            alert_text = f"{fmt(alert['latency_seconds'])} ({fmt(alert['bound_seconds'], 1)})"
        elif "skipped" in alert:
            alert_text = f"not measured ({fmt(alert['bound_seconds'], 1)})"
        else:
            alert_text = "—"
        seen = dict(r["farm_observed"])
        seen["missed"] = max(int(seen.get("missed") or 0), shortfall(r))
        rows.append(
            f"| {fmt(r['size'])} | {fmt(r['interval'], 1)} | {r['system']} "
            f"| {fmt(r['checks_per_second_required'], 1)} | {fmt(r['checks_per_second_achieved'], 1)} "
            f"| {lag_text} | {fmt(r.get('missed_checks'))} "
            f"| {fmt(seen['late_p99'], 3)} | {fmt(seen['missed'])} "
            f"| {with_range(r['cpu_percent'], r.get('cpu_percent_range'), 2)} "
            f"| {with_range(r['cpu_ms_per_check'], r.get('cpu_ms_per_check_range'), 3)} "
            f"| {fmt(r['peak_rss_mib'], 1)} "
            f"| {alert_text} | {fmt(r.get('machine_busy_percent'), 0)} |"
        )
    return "\n".join(rows)


def ratio_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| targets | interval s | CPU/check ours ÷ blackbox | RSS ours ÷ blackbox "
        "| CPU/check ours ÷ monit | RSS ours ÷ monit |",
        "|---|---|---|---|---|---|",
    ]
    by_key: dict[tuple[int, float], dict[str, dict[str, Any]]] = {}
    for r in results:
        if "skipped" not in r and "error" not in r:
            by_key.setdefault((r["size"], r["interval"]), {})[r["system"]] = r
    for (size, interval), systems in by_key.items():
        ours = systems.get("ours")
        if ours is None:
            continue
        cells = []
        for peer in PEERS:
            other = systems.get(peer)
            cells.append(ratio(ours["cpu_ms_per_check"], other["cpu_ms_per_check"]) if other else "—")
            cells.append(ratio(ours["peak_rss_mib"], other["peak_rss_mib"]) if other else "—")
        rows.append(f"| {fmt(size)} | {fmt(interval, 1)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def goals(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each with the measured figure (printed, never asserted)."""
    out: list[str] = []
    for r in results:
        if r.get("system") != "ours" or "error" in r or "skipped" in r:
            continue
        size, interval = r["size"], r["interval"]
        label = f"{size:,} @ {interval:g} s"
        lag = r.get("schedule_lag_seconds") or {}
        if size >= 10000:
            p99 = lag.get("p99")
            ok = r["missed_checks"] == 0 and p99 is not None and p99 < 0.5 and r["peak_rss_mib"] < 150
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: missed {r['missed_checks']}, "
                f"lag p99 {fmt(p99, 3)} s "
                f"(< 0.5), RSS {fmt(r['peak_rss_mib'], 1)} MiB (< 150)"
            )
        if size == 1000:
            cpc = r["cpu_ms_per_check"]
            ok = cpc is not None and cpc <= 0.5
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: CPU {fmt(cpc, 3)} ms/check (<= 0.5; aim 0.16)"
            )
        if size == 1 and interval > 60:
            ok = r["peak_rss_mib"] < 60 and (r["cpu_percent"] or 0) < 0.5
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: idle CPU {fmt(r['cpu_percent'], 3)} %, "
                f"RSS {fmt(r['peak_rss_mib'], 1)} MiB (< 60)"
            )
        alert = r.get("alert") or {}
        if "latency_seconds" in alert:
            ok = bool(alert.get("within_bound"))
            out.append(
                f"{'met' if ok else 'NOT met'}: {label}: alert latency {fmt(alert['latency_seconds'])} s "
                f"(<= {fmt(alert['bound_seconds'], 1)} s)"
            )
    return out


def report(document: dict[str, Any]) -> str:
    machine = document["machine"]
    ceiling = document.get("farm_ceiling")
    commits = sorted({str(r["monitor_commit"]) for r in document["results"] if r.get("monitor_commit")})
    commits = commits or [str(machine.get("monitor_commit") or "?")]
    lines = [
        f"## Keep-Alive Monitor scale bench — {machine['date']}",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, Linux {machine['kernel']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        f"Command: `{document['command']}` (monitor at commit {', '.join(commits) or '?'})",
        "",
    ]
    if ceiling:
        lines.append(
            f"Farm ceiling (fresh connection per request, raw-asyncio load client): "
            f"{fmt(ceiling['requests_per_second'], 0)} req/s "
            f"with the farm at {fmt(ceiling['farm_cpu_percent'], 1)} % "
            f"of one core and the load client at {fmt(ceiling['loadgen_cpu_percent'], 1)} % "
            f"(≈ {fmt(ceiling['estimated_ceiling_per_core'])} req/s per farm core; "
            f"{fmt(ceiling['farm_cpu_ms_per_request'], 3)} ms CPU per request)."
        )
    farm_cpus = [r["farm_cpu_percent"] for r in document["results"] if "farm_cpu_percent" in r]
    if farm_cpus:
        lines.append(f"Farm CPU during the runs: at most {fmt(max(farm_cpus), 1)} % of one core.")
    rows = representative(document["results"])
    if any(r.get("runs", 1) > 1 for r in rows):
        lines.append("Each row is the median of its runs by CPU cost; (min–max) over the runs in brackets.")
    lines += ["", table(rows), "", ratio_table(rows), ""]
    goal_lines = goals(rows)
    if goal_lines:
        lines += ["Issue #5 targets (reported, not asserted):", *(f"- {line}" for line in goal_lines), ""]
    for r in document["results"]:
        profile = r.get("profile")
        if profile and "samples" in profile:
            lines += [
                f"Profile of ours, {r['size']:,} targets @ {r['interval']:g} s (py-spy, {profile['file']}):",
                "```",
                render(profile),
                "```",
                "",
            ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="See bench/README.md for what each figure means.",
    )
    parser.add_argument("--sizes", default="1,100,1000,10000", help="comma-separated target counts")
    parser.add_argument(
        "--interval",
        help="seconds between checks: one value for every size, or one per size "
        "(default: 1→600, 100→5, 1000→5, 10000→10, others 10)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="steady window per run, seconds")
    parser.add_argument("--warmup", type=float, help="seconds before the window (default: one interval + 2)")
    parser.add_argument("--timeout", type=float, default=5.0, help="check timeout, seconds")
    parser.add_argument("--threshold", type=int, default=2, help="failure_threshold")
    parser.add_argument(
        "--peers", default="blackbox,monit", help="peers to run when installed: blackbox,monit or none"
    )
    parser.add_argument("--no-alert", dest="alert", action="store_false", help="skip the alert latency test")
    parser.add_argument(
        "--alert-max-wait",
        type=float,
        default=120.0,
        help="measure alert latency only where threshold × interval + timeout + 0.5 is at most this",
    )
    parser.add_argument("--max-concurrency", type=int, default=1000, help="MONITOR_MAX_CONCURRENCY")
    parser.add_argument("--farm-procs", type=int, default=1, help="farm processes")
    parser.add_argument("--farm-ports", type=int, default=4, help="listening ports per farm process")
    parser.add_argument(
        "--ceiling-seconds", type=float, default=5.0, help="farm ceiling measurement, seconds (0: skip)"
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="auto",
        metavar="PATH",
        help="also write the results as JSON (default path: bench/results/bench-<time>.json)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every size and system N times, interleaved; report medians"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy record our monitor over each window into DIR (CPU figures of such runs are inflated)",
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--profile-native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--monitor", type=Path, default=ROOT / "monitor_server.py")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the working directory (configs, logs)")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in str(args.sizes).split(",") if size.strip()]
    if not args.sizes or min(args.sizes) < 1 or max(args.sizes) > 99_999:
        parser.error("--sizes: target counts from 1 to 99999")
    if args.interval:
        values = [float(v) for v in str(args.interval).split(",") if v.strip()]
        if len(values) == 1:
            values *= len(args.sizes)
        if len(values) != len(args.sizes) or min(values) < 0.1:
            parser.error("--interval: one value, or one per size; each >= 0.1")
        args.intervals = values
    else:
        args.intervals = [DEFAULT_INTERVALS.get(size, 10.0) for size in args.sizes]
    if not 0.5 <= args.duration <= 3600:
        parser.error("--duration: from 0.5 to 3600 seconds")
    peers = [p.strip() for p in str(args.peers).split(",") if p.strip() and p.strip() != "none"]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"--peers: unknown peer {unknown[0]!r} (known: {', '.join(PEERS)}, none)")
    args.peer_list = peers
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat: from 1 to 20")
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--report"]:
        if len(argv) != 2:
            print(
                "usage: run.py --report RESULTS.json  (print the report of an earlier run)", file=sys.stderr
            )
            return 2
        print(report(json.loads(Path(argv[1]).read_text())))
        return 0
    args = parse_args(argv)
    raise_on_sigterm()
    command = " ".join([".venv/bin/python bench/run.py", *argv])
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="keepalive-bench-"))
    results: list[dict[str, Any]] = []
    failed = False
    try:
        tools = tool_versions()
        for peer in args.peer_list:
            if not tools.get(peer):
                print(f"peer {peer} is not installed; to include it: {APT_HINT}", flush=True)
        farm = start_farm(children, args.farm_procs, args.farm_ports, max(10_000, *args.sizes))
        ctx = Context(args, children, tmp, farm, start_telegram(children), tools)
        document: dict[str, Any] = {
            "command": command,
            "machine": machine_info(tools),
            "settings": {
                "duration": args.duration,
                "timeout": args.timeout,
                "threshold": args.threshold,
                "farm_processes": args.farm_procs,
                "farm_ports": len(farm.ports),
            },
            "results": results,
        }
        if args.ceiling_seconds > 0:
            document["farm_ceiling"] = farm_ceiling(ctx)
            print(f"farm ceiling: {json.dumps(document['farm_ceiling'])}", flush=True)
        runners = {"ours": run_ours, "blackbox": run_blackbox, "monit": run_monit}
        plan = [
            (repeat, size, interval, system)
            for repeat in range(args.repeat)
            for size, interval in zip(args.sizes, args.intervals, strict=True)
            for system in ["ours", *args.peer_list]
        ]
        for repeat, size, interval, system in plan:
            ctx.repeat = repeat
            round_text = f" (round {repeat + 1} of {args.repeat})" if args.repeat > 1 else ""
            print(f"running {system}: {size:,} targets every {interval:g} s{round_text} ...", flush=True)
            try:
                result = runners[system](ctx, size, interval)
            except Exception as exc:
                result = {"system": system, "error": f"{type(exc).__name__}: {exc}"}
                failed = failed or system == "ours"
            result.setdefault("size", size)
            result.setdefault("interval", interval)
            result["repeat"] = repeat
            results.append(result)
            brief = {k: v for k, v in result.items() if k not in ("farm_observed", "driver", "profile")}
            print(f"  {json.dumps(brief)}", flush=True)
            time.sleep(1.0)
        text = report(document)
        print("\n" + text, flush=True)
        if args.json:
            path = (
                RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
                if args.json == "auto"
                else Path(args.json)
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document, indent=2) + "\n")
            (path.with_suffix(".md")).write_text(text + "\n")
            print(f"results written to {path}", flush=True)
    finally:
        children.close()
        if args.keep_tmp:
            print(f"working directory kept: {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
