#!/usr/bin/env bash
# Start the Keep-Alive Monitor in the background under nohup (README_MONITOR.md, SPEC section 9).
#
#   ./start_monitor.sh          start it with the settings from the environment and .env
#   ./start_monitor.sh --demo   also start example_server.py on port 5004, watch it every 3 s and
#                               restart it when it goes down (its on_down: scripts/restart_example.sh)
#
# Exit 0 when the monitor started (or the demo is up), 1 when it did not.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$0"
}

demo=0
for arg in "$@"; do
    case "$arg" in
        --demo) demo=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            warn "unknown option: $arg"
            usage >&2
            exit 1
            ;;
    esac
done

cd "$ROOT"
ensure_venv

DEMO_PORT="${DEMO_PORT:-5004}"
if ((demo)); then
    # The whole keep-alive loop (SPEC 15): one target, the example server, with an on_down that
    # restarts it. The file is written here because it names the port.
    export HEALTH_CHECK_URL="http://127.0.0.1:$DEMO_PORT/health"
    export CHECK_INTERVAL_SECONDS=3 FAILURE_THRESHOLD=2
    [[ "$DEMO_PORT" =~ ^[0-9]+$ ]] || die "DEMO_PORT=$DEMO_PORT is not a port number"
    mkdir -p "$ROOT/state"
    DEMO_TARGETS="$ROOT/state/demo_targets.toml"
    restart="$ROOT/scripts/restart_example.sh"
    restart="${restart//\\/\\\\}" # a TOML basic string: backslashes and quotes escaped
    restart="${restart//\"/\\\"}"
    printf '%s\n' \
        "# Written by ./start_monitor.sh --demo (rewritten at each demo start)." \
        "[[targets]]" \
        'name = "example-server"' \
        "url = \"$HEALTH_CHECK_URL\"" \
        "on_down = [\"$restart\", \"$DEMO_PORT\"]" \
        "remediation_timeout = 20" >"$DEMO_TARGETS"
    export MONITOR_TARGETS_FILE="$DEMO_TARGETS"
fi

# Validate first: a bad setting is reported here, in one line, not buried in the log.
if ! check_output="$("$VENV_PY" "$MONITOR_SCRIPT" --check-config 2>&1)"; then
    warn "not started: the configuration is invalid"
    grep -v '^[[:space:]]*$' <<<"$check_output" | tail -n 5 >&2
    exit 1
fi
if ! read_settings MONITOR_PID_FILE MONITOR_LOG_FILE MONITOR_EVENTS_FILE MONITOR_HTTP_HOST MONITOR_HTTP_PORT; then
    die "not started: $CONFIG_ERROR"
fi
# The monitor writes MONITOR_LOG_FILE itself (rotated by size, reopened on SIGHUP); nohup gets
# only what never goes through logging, such as a fatal traceback, in a file of its own, so no
# line is written twice and rotation is not defeated by a second writer.
CRASH_FILE="$MONITOR_LOG_FILE.stderr"

# One monitor per repository: the PID file, or any daemon of ours without one.
pid="$(read_pid_file "$MONITOR_PID_FILE")"
if [[ -n "$pid" ]] && is_our_monitor "$pid"; then
    die "the monitor is already running (PID $pid); stop it with ./stop_monitor.sh"
fi
if [[ -n "$pid" || -f "$MONITOR_PID_FILE" ]]; then
    say "Removing a stale PID file ($MONITOR_PID_FILE${pid:+ names PID $pid, which is not this monitor})."
    rm -f "$MONITOR_PID_FILE"
fi
others="$(find_our_monitors | tr '\n' ' ')"
if [[ -n "${others// /}" ]]; then
    die "the monitor is already running without a PID file (PID ${others% }); stop it with ./stop_monitor.sh"
fi

# The monitor's own port must be free, or another program's answer there could pass for ours.
if [[ "$MONITOR_HTTP_PORT" != 0 ]] && port_in_use "$MONITOR_HTTP_PORT" "$MONITOR_HTTP_HOST"; then
    die "not started: MONITOR_HTTP_PORT=$MONITOR_HTTP_PORT is already in use on $MONITOR_HTTP_HOST by another program (choose another port, or 0 to turn the endpoint off)"
fi

# --demo: the example server to watch, reused when ours already runs.
started_example=""
if ((demo)); then
    example_url="http://127.0.0.1:$DEMO_PORT/health"
    example_pid="$(read_pid_file "$EXAMPLE_PID_FILE")"
    if [[ -n "$example_pid" ]] && is_our_example_server "$example_pid"; then
        say "Example server already running (PID $example_pid): reusing it."
    else
        rm -f "$EXAMPLE_PID_FILE"
        if port_in_use "$DEMO_PORT"; then
            die "port $DEMO_PORT is already in use by another program: the demo needs it for example_server.py"
        fi
        nohup "$VENV_PY" "$EXAMPLE_SCRIPT" --port "$DEMO_PORT" --host 127.0.0.1 \
            >>"$EXAMPLE_LOG_FILE" 2>&1 </dev/null &
        example_pid=$!
        printf '%s\n' "$example_pid" >"$EXAMPLE_PID_FILE"
        started_example="$example_pid"
        deadline=$((SECONDS + 5))
        until http_answers 127.0.0.1 "$DEMO_PORT" /health; do
            if ! is_alive "$example_pid" || ((SECONDS >= deadline)); then
                tail -n 10 "$EXAMPLE_LOG_FILE" >&2 || true
                stop_process "$example_pid" is_our_example_server 5 "example server" || true
                rm -f "$EXAMPLE_PID_FILE"
                die "the example server did not start (log: $EXAMPLE_LOG_FILE)"
            fi
            sleep 0.1
        done
        say "Example server started (PID $example_pid): $example_url (log: $EXAMPLE_LOG_FILE)"
    fi
fi

mkdir -p "$(dirname "$MONITOR_LOG_FILE")" "$(dirname "$MONITOR_PID_FILE")"
log_offset=0
crash_offset=0
[[ -f "$MONITOR_LOG_FILE" ]] && log_offset="$(wc -c <"$MONITOR_LOG_FILE")"
[[ -f "$CRASH_FILE" ]] && crash_offset="$(wc -c <"$CRASH_FILE")"

nohup "$VENV_PY" "$MONITOR_SCRIPT" >>"$CRASH_FILE" 2>&1 </dev/null &
pid=$!
printf '%s\n' "$pid" >"$MONITOR_PID_FILE.tmp"
mv -f "$MONITOR_PID_FILE.tmp" "$MONITOR_PID_FILE"

# It must still be alive a moment later, and answer on its own /health when that is on.
health_url=""
[[ "$MONITOR_HTTP_PORT" != 0 ]] && health_url="$(local_url "$MONITOR_HTTP_HOST" "$MONITOR_HTTP_PORT" /health)"
health_answers() { http_answers "$MONITOR_HTTP_HOST" "$MONITOR_HTTP_PORT" /health; }
started=$SECONDS
answered=0
polls=0
while :; do
    if ! is_our_monitor "$pid"; then
        # Until nohup has exec'd Python the child is not the monitor yet: a loaded machine can
        # take a while to get there, so wait for that, not only for the child's end.
        if is_alive "$pid" && ((SECONDS - started < 10)); then
            sleep 0.05
            continue
        fi
        rm -f "$MONITOR_PID_FILE"
        warn "the monitor exited during start-up; what it wrote ($MONITOR_LOG_FILE, $CRASH_FILE):"
        tail -c +"$((log_offset + 1))" "$MONITOR_LOG_FILE" 2>/dev/null | tail -n 10 >&2 || true
        tail -c +"$((crash_offset + 1))" "$CRASH_FILE" 2>/dev/null | tail -n 10 >&2 || true
        if [[ -n "$started_example" ]]; then
            stop_process "$started_example" is_our_example_server 5 "example server" || true
            rm -f "$EXAMPLE_PID_FILE"
        fi
        exit 1
    fi
    # Still alive at least a second after the launch, and /health answers (when it is on).
    if ((++polls >= 5)); then
        if [[ -z "$health_url" ]]; then
            ((polls >= 10)) && break
        elif ((answered)) || health_answers; then
            answered=1
            break
        elif ((SECONDS - started >= 8)); then
            break
        fi
    fi
    sleep 0.2
done

say "Keep-Alive Monitor started (PID $pid)"
say "  log:     $MONITOR_LOG_FILE (crash output: $CRASH_FILE)"
say "  events:  $MONITOR_EVENTS_FILE"
if [[ -n "$health_url" ]]; then
    say "  status:  $(local_url "$MONITOR_HTTP_HOST" "$MONITOR_HTTP_PORT" /)"
    ((answered)) || warn "the monitor runs, but $health_url does not answer yet: see $MONITOR_LOG_FILE"
fi
say "  stop:    ./stop_monitor.sh    status: ./status_monitor.sh"
if ((demo)); then
    say ""
    say "Demo: the monitor checks $example_url every 3 s and alerts after 2 failures."
    say "  To see the keep-alive loop, stop the example server:  kill \$(cat example_server.pid)"
    say "  (DOWN, then scripts/restart_example.sh brings it back, then RECOVERED, within ~15 s)"
    say "  (or make it report \"degraded\": kill -USR1 \$(cat example_server.pid); the restart fixes that too)"
fi
exit 0
