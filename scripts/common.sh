# shellcheck shell=bash disable=SC2034
# Shared by start_monitor.sh, stop_monitor.sh and status_monitor.sh (sourced, never run).
#
# Gives: ROOT (the repository, symlinks resolved), VENV_PY, say/warn/die, ensure_venv,
# load_paths (MONITOR_PID_FILE, MONITOR_LOG_FILE, MONITOR_STATE_DIR, MONITOR_EVENTS_FILE,
# MONITOR_HTTP_HOST, MONITOR_HTTP_PORT), read_pid_file, is_our_monitor, is_our_example_server,
# find_our_monitors, http_answers, stop_process.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
VENV_PY="$VENV/bin/python"
REQUIREMENTS="$ROOT/requirements.txt"
REQUIREMENTS_SHA="$VENV/.requirements.sha256"
MONITOR_SCRIPT="$ROOT/monitor_server.py"
EXAMPLE_SCRIPT="$ROOT/example_server.py"
EXAMPLE_PID_FILE="$ROOT/example_server.pid"
EXAMPLE_LOG_FILE="$ROOT/example_server.log"
SCRIPT_NAME="$(basename "$0")"

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    warn "$*"
    exit 1
}

# PY: the interpreter that creates .venv: $PYTHON, else python3; it must be 3.11 or newer.
pick_python() {
    PY="${PYTHON:-python3}"
    if ! command -v "$PY" >/dev/null 2>&1; then
        die "cannot find '$PY': install Python 3.11 or newer, or set PYTHON=/path/to/python3.11"
    fi
    if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        die "$PY is Python $("$PY" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'), the monitor needs 3.11 or newer: set PYTHON=/path/to/python3.11"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "${PY:-python3}" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    fi
}

# Create .venv and install requirements.txt on first use, and again whenever requirements.txt
# changes (its sha256 is kept in .venv/.requirements.sha256). pip's output goes to .venv/pip.log.
ensure_venv() {
    local want have=""
    want="$(sha256_of "$REQUIREMENTS")"
    if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c '' 2>/dev/null; then
        [[ -f "$REQUIREMENTS_SHA" ]] && have="$(<"$REQUIREMENTS_SHA")"
        [[ "$have" == "$want" ]] && return 0
        say "Updating .venv: requirements.txt changed (log: .venv/pip.log) ..."
    else
        pick_python
        say "Creating .venv with $PY and installing requirements.txt (first run; log: .venv/pip.log) ..."
        "$PY" -m venv "$VENV" || die "could not create $VENV with $PY (on Debian/Ubuntu: apt-get install python3-venv)"
    fi
    if ! "$VENV_PY" -m pip install --disable-pip-version-check --quiet -r "$REQUIREMENTS" >"$VENV/pip.log" 2>&1; then
        tail -n 15 "$VENV/pip.log" >&2
        die "installing requirements.txt into .venv failed (full log: $VENV/pip.log)"
    fi
    printf '%s\n' "$want" >"$REQUIREMENTS_SHA"
}

_default_path() { # NAME DEFAULT: the environment's value or the default, made absolute
    local value="${!1:-$2}"
    [[ "$value" == /* ]] || value="$ROOT/$value"
    printf '%s' "$value"
}

# Set the MONITOR_* paths and the HTTP address from the effective settings (environment and
# .env) via `monitor_config.py --paths`. Without .venv, or when the settings are invalid, fall
# back to the environment and the built-in defaults, put the reason in CONFIG_ERROR and return 1.
load_paths() {
    local out line errfile
    CONFIG_ERROR=""
    if [[ -x "$VENV_PY" ]]; then
        errfile="$(mktemp)"
        if out="$(cd "$ROOT" && "$VENV_PY" "$ROOT/monitor_config.py" --paths 2>"$errfile")"; then
            rm -f "$errfile"
            while IFS= read -r line; do
                # Only NAME=<shell-quoted value> lines for the names we expect are evaluated.
                if [[ "$line" =~ ^MONITOR_(PID_FILE|LOG_FILE|STATE_DIR|EVENTS_FILE|HTTP_HOST|HTTP_PORT)= ]]; then
                    eval "$line"
                fi
            done <<<"$out"
            return 0
        fi
        CONFIG_ERROR="$(grep -v '^[[:space:]]*$' "$errfile" | tail -n 1)"
        rm -f "$errfile"
        [[ -n "$CONFIG_ERROR" ]] || CONFIG_ERROR="monitor_config.py --paths failed"
    else
        CONFIG_ERROR="no .venv yet: using the environment and the defaults"
    fi
    MONITOR_PID_FILE="$(_default_path MONITOR_PID_FILE monitor.pid)"
    MONITOR_LOG_FILE="$(_default_path MONITOR_LOG_FILE monitor.log)"
    MONITOR_STATE_DIR="$(_default_path MONITOR_STATE_DIR state)"
    MONITOR_EVENTS_FILE="$(_default_path MONITOR_EVENTS_FILE logs/monitor_events.jsonl)"
    MONITOR_HTTP_HOST="${MONITOR_HTTP_HOST:-127.0.0.1}"
    MONITOR_HTTP_PORT="${MONITOR_HTTP_PORT:-5005}"
    return 1
}

# The PID stored in a PID file, or nothing when the file is missing or holds no number.
read_pid_file() {
    local pid=""
    [[ -f "$1" ]] && read -r pid <"$1" 2>/dev/null
    [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s' "$pid"
    return 0
}

# True when PID is a live (not zombie) Python process running SCRIPT: its argv[0] is a python
# interpreter and its first non-option argument is SCRIPT exactly. (Merely mentioning the path,
# as `tail -f .../monitor_server.py` or an editor does, is not enough.)
_runs_script() {
    local pid="$1" script="$2" state arg first=1
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    state="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]] || return 1
    while IFS= read -r -d '' arg; do
        if ((first)); then
            [[ "${arg##*/}" == python* ]] || return 1
            first=0
            continue
        fi
        [[ "$arg" == -* ]] && continue
        [[ "$arg" == "$script" ]]
        return
    done <"/proc/$pid/cmdline" 2>/dev/null
    return 1
}

# True only for this repository's monitor: a stale PID file may name an unrelated process,
# which must never be signalled.
is_our_monitor() { _runs_script "$1" "$MONITOR_SCRIPT"; }
is_our_example_server() { _runs_script "$1" "$EXAMPLE_SCRIPT"; }

# PIDs of every monitor of this repository that runs as a daemon (no --once and the like),
# with or without a PID file.
find_our_monitors() {
    local dir pid arg daemon
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        if [[ "$pid" == "$$" ]] || ! is_our_monitor "$pid"; then
            continue
        fi
        daemon=1
        while IFS= read -r -d '' arg; do
            case "$arg" in --once | --check-config | --test-alert | --help | -h) daemon=0 ;; esac
        done <"/proc/$pid/cmdline" 2>/dev/null
        ((daemon)) && printf '%s\n' "$pid"
    done
    return 0
}

# A URL to reach HOST:PORT from this machine (a wildcard address becomes loopback).
local_url() {
    local host="$1" port="$2" path="$3"
    case "$host" in
        "" | 0.0.0.0) host=127.0.0.1 ;;
        :: | "[::]") host="[::1]" ;;
        *:*) [[ "$host" == \[* ]] || host="[$host]" ;;
    esac
    printf 'http://%s:%s%s' "$host" "$port" "$path"
}

# True when URL answers HTTP at all (any status) within a second.
http_answers() {
    local py="$VENV_PY"
    [[ -x "$py" ]] || py="${PYTHON:-python3}"
    "$py" - "$1" <<'PY' >/dev/null 2>&1
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=1).close()
except urllib.error.HTTPError:
    pass  # an HTTP error status is still an answer
except Exception:
    sys.exit(1)
PY
}

# True when something accepts TCP connections on PORT [HOST] (HOST defaults to 127.0.0.1;
# a wildcard address is tried on loopback).
port_in_use() {
    local port="$1" host="${2:-127.0.0.1}"
    case "$host" in
        "" | 0.0.0.0) host=127.0.0.1 ;;
        :: | "[::]") host=::1 ;;
    esac
    host="${host#[}"
    (exec 3<>"/dev/tcp/${host%]}/$port") 2>/dev/null
}

# Send SIGTERM, wait up to GRACE seconds, then SIGKILL. CHECK is the predicate (is_our_monitor
# or is_our_example_server) re-evaluated before every signal, so a PID reused meanwhile by
# another process is never hit. Returns 0 when the process is gone.
stop_process() {
    local pid="$1" check="$2" grace="$3" label="$4" deadline
    "$check" "$pid" || return 0
    if ! kill -TERM "$pid" 2>/dev/null && "$check" "$pid"; then
        warn "cannot signal $label (PID $pid): permission denied?"
        return 1
    fi
    deadline=$((SECONDS + grace))
    while "$check" "$pid"; do
        if ((SECONDS >= deadline)); then
            warn "$label (PID $pid) still runs ${grace}s after SIGTERM: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 5))
            while "$check" "$pid"; do
                ((SECONDS >= deadline)) && return 1
                sleep 0.1
            done
            return 0
        fi
        sleep 0.1
    done
    return 0
}
