#!/usr/bin/env bash
# Is the Keep-Alive Monitor running? Each target's state, and the last 10 log lines.
# (README_MONITOR.md, SPEC section 9)
#
# Prints `monitor_server.py --status`: targets live from the monitor's /api/status when it
# answers, else from the state file it saved (<MONITOR_STATE_DIR>/state.json). Exit 0 running,
# 3 stopped.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

if [[ $# -gt 0 ]]; then
    case "$1" in
        -h | --help)
            sed -n '2,7s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *) die "unknown option: $1" ;;
    esac
fi

cd "$ROOT"
if [[ ! -x "$VENV_PY" ]]; then
    # Without .venv, start_monitor.sh never ran here; a monitor started by hand is still found.
    others="$(find_our_monitors | tr '\n' ' ')"
    if [[ -n "${others// /}" ]]; then
        say "Keep-Alive Monitor: running (PID ${others% }), but there is no .venv to read its status with"
        exit 0
    fi
    say "Keep-Alive Monitor: stopped (no .venv yet: ./start_monitor.sh creates it)"
    exit 3
fi
exec "$VENV_PY" "$MONITOR_SCRIPT" --status
