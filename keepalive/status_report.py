"""`monitor_server.py --status` (what ./status_monitor.sh prints): running or stopped, each
target's state, and the end of the log. Exit 0 running, 3 stopped (SPEC section 9).

Targets come live from the running monitor's /api/status, else from the state file it saved.
Everything shown comes from files and servers others control, so every cell goes through
``printable`` (no control character reaches the terminal) and every URL through ``public_url``.
"""

from __future__ import annotations

import json
import math
import os
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from keepalive.probe.checker import printable
from keepalive.process import ProcessTable
from keepalive.targets import public_url

EXIT_RUNNING = 0
EXIT_STOPPED = 3
LOG_LINES = 10
# /api/status at 10,000 targets is a few MB; a status command never needs more than this.
API_LIMIT = 64 * 1024 * 1024
# Enough for 10 log lines of any sane length without reading a large log.
TAIL_BYTES = 64 * 1024

Fetch = Callable[[str], Any]


@dataclass(frozen=True)
class StatusPaths:
    """Where the running monitor keeps what --status reads."""

    script: Path
    pid_file: Path
    log_file: Path
    state_dir: Path
    http_host: str
    http_port: int
    config_error: str | None = None


@dataclass(frozen=True)
class Running:
    pid: int
    uptime: float | None
    from_pid_file: bool


def local_url(host: str, port: int, path: str) -> str:
    """A URL to reach ``host:port`` from this machine (a wildcard address becomes loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def fetch_json(url: str, timeout: float = 3.0) -> Any:
    """GET ``url`` and parse its JSON body (at most API_LIMIT bytes)."""
    # No proxy: an http_proxy in the operator's environment must not see (or answer for) ours.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        body = response.read(API_LIMIT + 1)
    if len(body) > API_LIMIT:
        raise ValueError(f"answer larger than {API_LIMIT} bytes")
    return json.loads(body)


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def find_running(paths: StatusPaths, processes: ProcessTable) -> tuple[Running | None, int | None]:
    """The running monitor (from the PID file, else found among the processes) and the PID a
    stale PID file names, if any."""
    pid = read_pid_file(paths.pid_file)
    if pid is not None and processes.is_daemon(pid, paths.script):
        return Running(pid, processes.uptime(pid), True), None
    others = processes.daemons(paths.script, exclude=os.getpid())
    running = Running(others[0], processes.uptime(others[0]), False) if others else None
    return running, pid


def format_uptime(seconds: float | None) -> str:
    """``3d 04:05:06``, ``04:05:06`` or ``05:06``, like ps's elapsed time; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours or days else f"{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def when(value: Any) -> str:
    """An epoch or ISO-8601 time as local ``YYYY-MM-DD HH:MM:SS``, or ``-``."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone()
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(value)


def _latency(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.0f} ms"
    return "-"


def _row(name: Any, record: dict[str, Any]) -> tuple[str, ...]:
    url = record.get("url")
    return (
        str(name),
        str(record.get("state") or record.get("status") or "?")
        # SPEC 13: its notifications are held (the why is on the page and in /api/status).
        + (" (held)" if isinstance(record.get("silenced_by"), str) else ""),
        str(record.get("consecutive_failures", 0)),
        when(record.get("last_check")),
        _latency(record.get("last_latency_ms")),
        str(record.get("last_reason") or kind_note(record) or "-"),
        public_url(url) if isinstance(url, str) else "",
    )


def _ago(value: Any) -> str | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    seconds = max(0, int(datetime.now(moment.tzinfo).timestamp() - moment.timestamp()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def kind_note(record: dict[str, Any]) -> str | None:
    """What a healthy push, log or https target shows instead of a reason (SPEC 14)."""
    kind = record.get("kind")
    if kind == "push":
        ago = _ago(record["last_ping"]) if record.get("last_ping") else None
        return f"last ping {ago}" if ago else "never pinged"
    if kind == "log" and record.get("last_match"):
        ago = _ago(record.get("last_match_at")) or "?"
        return f"last match {ago}: {record['last_match']}"
    days = record.get("cert_days_left")
    if isinstance(days, (int, float)) and not isinstance(days, bool):
        return f"certificate: {days:.0f} days left" if days >= 1 else "certificate: less than a day left"
    return None


def rows_from_api(data: Any) -> list[tuple[str, ...]]:
    """Rows from /api/status: ``{"targets": [{"name": ..., "state": ...}, ...]}``."""
    targets = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(targets, list):
        raise ValueError("no targets list in the answer")
    return [_row(t.get("name", "?"), t) for t in targets if isinstance(t, dict)]


def rows_from_state(data: Any) -> list[tuple[str, ...]]:
    """Rows from state.json: ``{"targets": {name: record}}``."""
    targets = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(targets, dict):
        raise ValueError("no targets in the file")
    return [_row(name, record) for name, record in sorted(targets.items()) if isinstance(record, dict)]


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Aligned lines; the URL, last and longest, is not padded."""
    header = ("TARGET", "STATE", "FAILS", "LAST CHECK", "LATENCY", "LAST REASON", "URL")
    cells = [header, *(tuple(printable(cell) for cell in row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in cells
    ]


def tail_lines(path: Path, count: int = LOG_LINES) -> list[str] | None:
    """The last ``count`` lines of ``path``, or None when it is missing or empty."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read(TAIL_BYTES)
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first one is cut
    return lines[-count:]


def _saved_note(data: Any, now: float) -> str:
    saved = data.get("saved_at") if isinstance(data, dict) else None
    if not isinstance(saved, (int, float)) or isinstance(saved, bool) or not math.isfinite(saved):
        return ""
    return f", saved {when(saved)} ({max(0, int(now - saved))} s ago)"


def target_lines(paths: StatusPaths, running: Running | None, fetch: Fetch, now: float) -> list[str]:
    fallback = ""
    if running is not None and paths.http_port != 0:
        url = local_url(paths.http_host, paths.http_port, "/api/status")
        try:
            rows = rows_from_api(fetch(url))
        except Exception as exc:  # any failure: the saved state is the next best answer
            fallback = f"; {url} did not answer: {type(exc).__name__}"
        else:
            return [f"Targets (live from {url}):", *(table(rows) if rows else ["  (none yet)"])]
    state_path = paths.state_dir / "state.json"
    shown = printable(str(state_path))
    try:
        data = json.loads(state_path.read_bytes())
        rows = rows_from_state(data)
    except FileNotFoundError:
        return [f"Targets: no saved state yet ({shown} does not exist){fallback}"]
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a state file"
        return [f"Targets: cannot read {shown}: {reason}{fallback}"]
    head = f"Targets (from {shown}{_saved_note(data, now)}{fallback}):"
    return [head, *(table(rows) if rows else ["  (none yet)"])]


def report(
    paths: StatusPaths, out: TextIO, processes: ProcessTable, fetch: Fetch = fetch_json, now: float = 0.0
) -> int:
    """Print the status; returns EXIT_RUNNING or EXIT_STOPPED."""
    running, stale_pid = find_running(paths, processes)
    lines: list[str] = []
    if running is not None:
        note = "" if running.from_pid_file else ", no PID file"
        lines.append(
            f"Keep-Alive Monitor: running (PID {running.pid}, up {format_uptime(running.uptime)}{note})"
        )
    else:
        lines.append("Keep-Alive Monitor: stopped")
        if stale_pid is not None:
            lines.append(
                f"  (stale PID file {printable(str(paths.pid_file))} names PID {stale_pid}, "
                "which is not this monitor)"
            )
    if paths.config_error:
        lines.append(f"  settings: {printable(paths.config_error)}")
    lines += ["", *target_lines(paths, running, fetch, now), ""]
    log_name = printable(str(paths.log_file))
    tail = tail_lines(paths.log_file)
    if tail is None:
        lines.append(f"Log: {log_name} is empty or does not exist yet.")
    else:
        lines.append(f"Last {LOG_LINES} lines of {log_name}:")
        lines += [f"  {printable(line)}" for line in tail]
    out.write("\n".join(lines) + "\n")
    return EXIT_RUNNING if running is not None else EXIT_STOPPED
