# shellcheck shell=bash disable=SC2034
# Shared by start_monitor.sh, stop_monitor.sh and status_monitor.sh (sourced, never run).
#
# Gives: ROOT (the repository, symlinks resolved), VENV_PY, say/warn/die, ensure_venv,
# read_settings NAME..., read_pid_file, is_our_monitor, is_our_example_server,
# find_our_monitors, http_answers, stop_process.
#
# The scripts keep only the venv, nohup, the PID file and signals. Settings and their defaults
# live in keepalive/config.py alone: read_settings asks the monitor for them, and no setting is
# ever evaluated by the shell.

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
    local version=""
    PY="${PYTHON:-python3}"
    if ! command -v "$PY" >/dev/null 2>&1; then
        die "cannot find '$PY': install Python 3.11 or newer, or set PYTHON=/path/to/python3.11"
    fi
    version="$("$PY" --version 2>&1 | head -n 1)" || true
    if [[ "$version" =~ ^Python\ 3\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 11)); then
        return 0
    fi
    die "$PY is ${version:-an unknown Python}, the monitor needs 3.11 or newer: set PYTHON=/path/to/python3.11"
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum is installed (coreutils or perl provides one)"
    fi
}

# Create .venv and install requirements.txt on first use, and again whenever requirements.txt
# changes (its sha256 is kept in .venv/.requirements.sha256). pip's output goes to .venv/pip.log.
ensure_venv() {
    local want have=""
    want="$(sha256_of "$REQUIREMENTS")"
    if [[ -x "$VENV_PY" ]] && "$VENV_PY" --version >/dev/null 2>&1; then
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

# read_settings NAME...: set each shell variable NAME to the effective value of the setting NAME,
# exactly as the monitor reads it (environment, .env, defaults; paths absolute). The values come
# from `monitor_server.py --print-setting`, each ended by a NUL byte, and are assigned with
# `printf -v`: a value is never parsed or evaluated, so a newline or `$(...)` in .env stays text.
# Returns 1 with the reason in CONFIG_ERROR when there is no .venv or a value is invalid.
read_settings() {
    local names=("$@") values=() out err i
    CONFIG_ERROR=""
    if [[ ! -x "$VENV_PY" ]]; then
        CONFIG_ERROR="no .venv yet (./start_monitor.sh creates it)"
        return 1
    fi
    out="$(mktemp)"
    err="$(mktemp)"
    if (cd "$ROOT" && "$VENV_PY" "$MONITOR_SCRIPT" --print-setting "${names[@]}") >"$out" 2>"$err"; then
        mapfile -d '' -t values <"$out"
    fi
    if ((${#values[@]} == ${#names[@]})); then
        for i in "${!names[@]}"; do
            printf -v "${names[i]}" '%s' "${values[i]}"
        done
    else
        CONFIG_ERROR="$(grep -v '^[[:space:]]*$' "$err" | tail -n 1)"
        [[ -n "$CONFIG_ERROR" ]] || CONFIG_ERROR="monitor_server.py --print-setting failed"
    fi
    rm -f "$out" "$err"
    [[ -z "$CONFIG_ERROR" ]]
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
# as `tail -f .../monitor_server.py` or an editor does, is not enough.) With a third argument
# "alone", SCRIPT must also have no arguments: the daemon, not `--once`, `--status` and the like.
# keepalive/process.py applies the same rule for `monitor_server.py --status`.
_runs_script() {
    local pid="$1" script="$2" alone="${3:-}" state arg first=1 found=0
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    state="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]] || return 1
    while IFS= read -r -d '' arg; do
        if ((first)); then
            [[ "${arg##*/}" == python* ]] || return 1
            first=0
        elif ((found)); then
            [[ -z "$alone" ]]
            return
        elif [[ "$arg" != -* ]]; then
            [[ "$arg" == "$script" ]] || return 1
            found=1
        fi
    done <"/proc/$pid/cmdline" 2>/dev/null
    ((found))
}

# True while PID exists and has not exited (a zombie has: its parent has not reaped it yet).
is_alive() {
    local state
    state="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

# True only for this repository's monitor: a stale PID file may name an unrelated process,
# which must never be signalled.
is_our_monitor() { _runs_script "$1" "$MONITOR_SCRIPT" alone; }
is_our_example_server() { _runs_script "$1" "$EXAMPLE_SCRIPT"; }

# PIDs of every monitor of this repository that runs as a daemon, with or without a PID file.
find_our_monitors() {
    local dir pid
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        [[ "$pid" != "$$" ]] && is_our_monitor "$pid" && printf '%s\n' "$pid"
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

# True when an HTTP server answers (any status) GET PATH on HOST:PORT within 2 s (a wildcard
# address is tried on loopback). Plain bash: a status line is all it needs to see.
http_answers() {
    local host="$1" port="$2" path="$3" hostport
    case "$host" in
        "" | 0.0.0.0) host=127.0.0.1 ;;
        :: | "[::]") host=::1 ;;
    esac
    host="${host#[}"
    host="${host%]}"
    hostport="$host:$port"
    [[ "$host" == *:* ]] && hostport="[$host]:$port"
    (
        local line=""
        exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
        IFS= read -r -t 2 line <&3 && [[ "$line" == HTTP/1.* ]]
    ) 2>/dev/null
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
