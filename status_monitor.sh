#!/usr/bin/env bash
# Is the Keep-Alive Monitor running? Each target's state, and the last 10 log lines.
# (README_MONITOR.md, SPEC section 9)
#
# Targets come live from the monitor's /api/status when it answers, else from the state file
# it saved (<MONITOR_STATE_DIR>/state.json). Exit 0 running, 3 stopped.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

if [[ $# -gt 0 ]]; then
    case "$1" in
        -h | --help)
            sed -n '2,6s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *) die "unknown option: $1" ;;
    esac
fi

cd "$ROOT"
load_paths || warn "$CONFIG_ERROR (falling back to the default paths)"

running_pid=""
pid="$(read_pid_file "$MONITOR_PID_FILE")"
if [[ -n "$pid" ]] && is_our_monitor "$pid"; then
    running_pid="$pid"
else
    running_pid="$(find_our_monitors | head -n 1)"
fi

if [[ -n "$running_pid" ]]; then
    uptime="$(ps -o etime= -p "$running_pid" 2>/dev/null | tr -d ' ')"
    note=""
    [[ "$running_pid" == "$pid" ]] || note=", no PID file"
    say "Keep-Alive Monitor: running (PID $running_pid, up ${uptime:-?}$note)"
else
    say "Keep-Alive Monitor: stopped"
    if [[ -n "$pid" ]]; then
        say "  (stale PID file $MONITOR_PID_FILE names PID $pid, which is not this monitor)"
    fi
fi
if [[ -n "${CONFIG_ERROR:-}" ]]; then
    say "  settings: $CONFIG_ERROR"
fi

api_url=""
if [[ -n "$running_pid" && "$MONITOR_HTTP_PORT" != 0 ]]; then
    api_url="$(local_url "$MONITOR_HTTP_HOST" "$MONITOR_HTTP_PORT" /api/status)"
fi
status_py="$VENV_PY"
[[ -x "$status_py" ]] || status_py="${PYTHON:-python3}"

say ""
"$status_py" - "$api_url" "$MONITOR_STATE_DIR/state.json" <<'PY' || say "(could not read the target states)"
"""Print one line per target, from /api/status or else from state.json (stdlib only)."""

import json
import sys
import time
import urllib.request
from datetime import datetime

api_url, state_path = sys.argv[1], sys.argv[2]


def when(value):
    """An epoch or ISO time as local 'YYYY-MM-DD HH:MM:SS', or '-'."""
    if value in (None, ""):
        return "-"
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone()
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(value)


rows, source, fallback = None, "", ""
if api_url:
    try:
        with urllib.request.urlopen(api_url, timeout=3) as response:
            data = json.load(response)
        rows = [
            (
                t.get("name", "?"),
                t.get("state") or t.get("status") or "?",
                t.get("consecutive_failures", 0),
                when(t.get("last_check")),
                "-" if t.get("last_latency_ms") is None else f"{t['last_latency_ms']:.0f} ms",
                t.get("last_reason") or "-",
                t.get("url", ""),
            )
            for t in data.get("targets", [])
        ]
        source = f"live from {api_url}"
    except Exception as exc:  # fall back to the state file
        fallback = f"; {api_url} did not answer: {type(exc).__name__}"
if rows is None:
    try:
        with open(state_path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        print(f"Targets: no saved state yet ({state_path} does not exist)")
        sys.exit(0)
    except (OSError, ValueError) as exc:
        print(f"Targets: cannot read {state_path}: {exc}")
        sys.exit(0)
    rows = [
        (
            name,
            t.get("status") or t.get("state") or "?",
            t.get("consecutive_failures", 0),
            when(t.get("last_check")),
            "-" if t.get("last_latency_ms") is None else f"{t['last_latency_ms']:.0f} ms",
            t.get("last_reason") or "-",
            t.get("url", ""),
        )
        for name, t in sorted((data.get("targets") or {}).items())
    ]
    saved = data.get("saved_at")
    age = f", saved {when(saved)}" if saved else ""
    if saved and isinstance(saved, (int, float)):
        age += f" ({max(0, int(time.time() - saved))} s ago)"
    source = f"from {state_path}{age}{fallback}"

print(f"Targets ({source}):")
if not rows:
    print("  (none yet)")
    sys.exit(0)
header = ("TARGET", "STATE", "FAILS", "LAST CHECK", "LATENCY", "LAST REASON", "URL")


def clean(cell):
    """Names, reasons and URLs come from the targets file and the watched servers: no control
    character of theirs reaches the terminal."""
    return "".join(" " if ch < " " or ch == "\x7f" else ch for ch in str(cell))


table = [header] + [tuple(clean(cell) for cell in row) for row in rows]
widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
for row in table:
    print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
PY

say ""
if [[ -s "$MONITOR_LOG_FILE" ]]; then
    say "Last 10 lines of $MONITOR_LOG_FILE:"
    tail -n 10 "$MONITOR_LOG_FILE" | sed 's/^/  /'
else
    say "Log: $MONITOR_LOG_FILE is empty or does not exist yet."
fi

[[ -n "$running_pid" ]] && exit 0
exit 3
