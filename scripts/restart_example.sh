#!/usr/bin/env bash
# Restart the demo's example server: the on_down command of `./start_monitor.sh --demo` (SPEC 15).
#
#   scripts/restart_example.sh PORT [PID_FILE] [LOG_FILE]
#
# Stops the example server named by PID_FILE if it still runs (it may answer "degraded"), starts
# a new one on 127.0.0.1:PORT in its own session with its output in LOG_FILE (so nothing holds the
# monitor's output pipe), and waits up to 10 s for its /health to answer.
# Exit 0 when it answers, 1 when it did not start (the last lines of its log say why).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

port="${1:-}"
[[ "$port" =~ ^[0-9]+$ ]] || die "usage: $SCRIPT_NAME PORT [PID_FILE] [LOG_FILE]"
pid_file="${2:-$EXAMPLE_PID_FILE}"
log_file="${3:-$EXAMPLE_LOG_FILE}"
[[ -x "$VENV_PY" ]] || die "no $VENV_PY: run ./start_monitor.sh once to create it"

old="$(read_pid_file "$pid_file")"
if [[ -n "$old" ]] && is_our_example_server "$old"; then
    stop_process "$old" is_our_example_server 5 "example server" || die "the old example server (PID $old) would not stop"
fi
if port_in_use "$port"; then
    die "port $port is in use by another program: not starting a second server there"
fi

cd "$ROOT"
setsid "$VENV_PY" "$EXAMPLE_SCRIPT" --port "$port" --host 127.0.0.1 >>"$log_file" 2>&1 </dev/null &
pid=$!
printf '%s\n' "$pid" >"$pid_file.tmp"
mv -f "$pid_file.tmp" "$pid_file"
deadline=$((SECONDS + 10))
until http_answers 127.0.0.1 "$port" /health; do
    if ! is_alive "$pid" || ((SECONDS >= deadline)); then
        tail -n 5 "$log_file" >&2 || true
        die "the example server did not come up on port $port"
    fi
    sleep 0.1
done
say "example server restarted (PID $pid) on http://127.0.0.1:$port/health"
