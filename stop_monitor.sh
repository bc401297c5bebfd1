#!/usr/bin/env bash
# Stop the Keep-Alive Monitor started by start_monitor.sh (README_MONITOR.md, SPEC section 9).
#
# SIGTERM, then SIGKILL after a grace period (STOP_GRACE_SECONDS; by default REQUEST_TIMEOUT + 5 s). Only a process running this repository's monitor_server.py is ever signalled:
# a stale PID file naming another process is removed and reported, never acted on. Also stops
# the demo's example_server.py when example_server.pid names it.
# Exit 0 when nothing of the monitor runs afterwards, 1 otherwise.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

if [[ $# -gt 0 ]]; then
    case "$1" in
        -h | --help)
            sed -n '2,8s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *) die "unknown option: $1" ;;
    esac
fi

cd "$ROOT"
# Even with invalid settings the monitor must be stoppable: each value is asked for on its own,
# and without the PID file the monitor is still found among the processes.
if ! read_settings MONITOR_PID_FILE; then
    warn "$CONFIG_ERROR (looking for the monitor among the processes only)"
    MONITOR_PID_FILE=""
fi

grace_seconds() {
    # A bad REQUEST_TIMEOUT must not block a stop: then wait what a default stop takes.
    read_settings STOP_GRACE_SECONDS || STOP_GRACE_SECONDS=10
    printf '%s' "$STOP_GRACE_SECONDS"
}

status=0
targets=()
pid=""
[[ -n "$MONITOR_PID_FILE" ]] && pid="$(read_pid_file "$MONITOR_PID_FILE")"
if [[ -n "$pid" ]] && is_our_monitor "$pid"; then
    targets+=("$pid")
elif [[ -n "$MONITOR_PID_FILE" && -f "$MONITOR_PID_FILE" ]]; then
    if [[ -z "$pid" ]]; then
        say "Removing an unreadable PID file ($MONITOR_PID_FILE)."
    elif [[ -d "/proc/$pid" ]]; then
        say "Stale PID file: PID $pid is not this monitor ($(ps -o comm= -p "$pid" 2>/dev/null || echo '?')); removed it, left the process alone."
    else
        say "Stale PID file: PID $pid is not running; removed it."
    fi
    rm -f "$MONITOR_PID_FILE"
fi
while IFS= read -r other; do
    [[ -z "$other" || " ${targets[*]:-} " == *" $other "* ]] && continue
    say "Found a monitor of this repository without a PID file (PID $other)."
    targets+=("$other")
done < <(find_our_monitors)

if ((${#targets[@]} == 0)); then
    say "Keep-Alive Monitor is not running."
else
    grace="$(grace_seconds)"
    for pid in "${targets[@]}"; do
        say "Stopping the Keep-Alive Monitor (PID $pid, up to ${grace}s) ..."
        if stop_process "$pid" is_our_monitor "$grace" "the monitor"; then
            say "Stopped (PID $pid)."
        else
            warn "PID $pid is still running"
            status=1
        fi
    done
    ((status == 0)) && [[ -n "$MONITOR_PID_FILE" ]] && rm -f "$MONITOR_PID_FILE"
fi

# The demo's example server, only when the PID file names our example_server.py.
example_pid="$(read_pid_file "$EXAMPLE_PID_FILE")"
if [[ -n "$example_pid" ]] && is_our_example_server "$example_pid"; then
    if stop_process "$example_pid" is_our_example_server 5 "the example server"; then
        say "Stopped the example server (PID $example_pid)."
        rm -f "$EXAMPLE_PID_FILE"
    else
        warn "the example server (PID $example_pid) is still running"
    fi
elif [[ -f "$EXAMPLE_PID_FILE" ]]; then
    rm -f "$EXAMPLE_PID_FILE"
fi

exit "$status"
