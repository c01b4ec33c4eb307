# shellcheck shell=bash
# Helpers sourced by rabbitmq.sh and activemq.sh (not meant to be run).
#
# Why: both scripts run a broker as the invoking user, detached, with its state
# in a private directory, and must find "their" processes again without pid
# files that may be stale.  Every process a script starts gets the variable
# STOMPWS_BROKER_MARKER=<name>:<private dir> in its environment (children such
# as beam's epmd inherit it), so stop/status look the marker up in
# /proc/*/environ instead of trusting a pid that may have been reused.

BROKERS_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BROKERS_SCRIPTS_DIR/../.." && pwd)"
# shellcheck source=SCRIPTDIR/ports.env
. "$BROKERS_SCRIPTS_DIR/ports.env"
# shellcheck disable=SC2034  # used by the sourcing scripts
BROKERS_STATE_DIR="${STOMPWS_BROKER_DIR:-$REPO_ROOT/.brokers}"
PYTHON="${PYTHON:-python3}"
START_TIMEOUT="${STOMPWS_BROKER_TIMEOUT:-60}"
STOP_TIMEOUT="${STOMPWS_BROKER_STOP_TIMEOUT:-60}"

log() { echo "$BROKER_NAME.sh: $*"; }
die() { echo "$BROKER_NAME.sh: $*" >&2; exit 1; }

# Join lines (e.g. pids) into one space-separated line.
one_line() { paste -sd' ' -; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pids of live (non-zombie) processes whose environment holds the marker.
marker_pids() {
    local env_file pid state
    # One grep over all environ files (-z: NUL-separated entries, -x: whole entry).
    for env_file in $(grep -lzxF "STOMPWS_BROKER_MARKER=$1" /proc/[0-9]*/environ 2>/dev/null || true); do
        pid="${env_file#/proc/}"
        pid="${pid%/environ}"
        state="$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null || true)"
        if [ -n "$state" ] && [ "$state" != Z ]; then echo "$pid"; fi
    done
    return 0
}

# The command name of a pid (empty if gone).
pid_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

# Wait until none of the given ports accepts connections; false on timeout.
wait_ports_closed() {
    local deadline=$((SECONDS + $1)) port
    shift
    while :; do
        local busy=0
        for port in "$@"; do
            if port_open "$port"; then busy=1; fi
        done
        [ "$busy" -eq 0 ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# Refuse to start when a port we need is taken by something else.
require_ports_free() {
    local port
    for port in "$@"; do
        if port_open "$port"; then
            die "port 127.0.0.1:$port is already in use by another process (not our $BROKER_NAME); stop it first"
        fi
    done
}

# Take the per-broker lock (fd 9) so concurrent start/stop calls serialise.
# Processes started while holding it must get 9>&- so they do not keep it.
take_lock() {
    mkdir -p "$1"
    exec 9>"$1/.lock"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT)) 9 || die "could not lock $1/.lock"
}

# Print the end of each log, from its last "===== ... start" line on (our
# start-up marker) when there is one, at most 40 lines.
show_log_tail() {
    local f
    for f in "$@"; do
        if [ -s "$f" ]; then
            echo "----- last lines of $f -----" >&2
            awk '/^===== .* start$/ { n = 0 } { buf[n++] = $0 }
                 END { for (i = (n > 40 ? n - 40 : 0); i < n; i++) print buf[i] }' "$f" >&2
        fi
    done
}

# Explain why a start failed: the process exited, or the timeout passed.
start_failed() {
    local pid="${1:-}"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        echo "$BROKER_NAME.sh: start failed: the process exited during start-up" >&2
    elif [ -n "$pid" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
        echo "$BROKER_NAME.sh: start failed: the process exited during start-up" >&2
    else
        echo "$BROKER_NAME.sh: start failed: not ready within ${START_TIMEOUT} s" \
            "(STOMPWS_BROKER_TIMEOUT); it is left running: see '$0 status', '$0 stop'" >&2
    fi
}
