#!/usr/bin/env bash
# Run a three-node RabbitMQ 3.10 cluster (Debian package) on loopback for the fail-over tests.
#
# Usage: scripts/brokers/cluster.sh COMMAND
#   start        start the nodes stompws-a, -b and -c@localhost, join them into one cluster and
#                wait until each answers STOMP and Web-STOMP; a no-op when all three already do.
#                When no node runs at all, the cluster is made anew (its old data is removed:
#                it only ever holds test queues); nodes missing from a running cluster are
#                started with their data, as "revive" does.
#   stop         stop every node (cleanly) and wait until its ports are closed
#   status       exit 0 iff all three nodes answer and each sees the other two running
#   kill NODE    SIGKILL the beam process of node NODE (a, b or c): a hard crash, no clean-up;
#                prints the moment of the kill as Unix time ("... at 1796324001.07...")
#   revive NODE  start node NODE again and wait until it is back in the cluster and its
#                STOMP and Web-STOMP ports answer (refused when no other node runs: use start)
#   ctl NODE ARGS  run the package's rabbitmqctl against node NODE, e.g.
#                "cluster.sh ctl a list_queues name type members"
# Ports (scripts/brokers/ports.env): node X has STOMP 127.0.0.1:$CLUSTER_X_STOMP_PORT,
#   Web-STOMP ws://127.0.0.1:$CLUSTER_X_WS_PORT/ws, distribution $CLUSTER_X_DIST_PORT; the
#   nodes share an epmd of their own on $CLUSTER_EPMD_PORT; no AMQP listener.
# Environment: STOMPWS_BROKER_DIR (default <repo>/.brokers; state goes in its cluster/<node>
#   subdirs), STOMPWS_BROKER_TIMEOUT (wait for a node to start, default 60 s).
# Login: guest/guest (allowed from loopback only).
#
# Why it is done this way:
# - As in rabbitmq.sh: the package's own scripts are run as the invoking user with every path
#   in the private directory, everything listens on 127.0.0.1 only, and processes are found
#   again by the STOMPWS_BROKER_MARKER in their environment (common.sh), never by pid files.
# - The cluster must coexist with rabbitmq.sh's node stompws@localhost, which other tests use
#   at the same time: own node names, ports and epmd (ERL_EPMD_PORT), so that starting,
#   killing or stopping a cluster node can never disturb it.  The CLI tools pick their own
#   distribution port in RABBITMQ_DIST_PORT + 10000..10010, which is why the cluster's
#   distribution ports sit away from 25672.
# - The nodes share HOME (<state>/cluster) and so one Erlang cookie, made on first start.
# - AMQP is off (listeners.tcp = none): STOMP and Web-STOMP reach the broker through the
#   Erlang direct client, not over AMQP, and the tests need nothing else.
# - A fresh cluster is formed by starting a alone (its peer list names only itself, so it
#   does not spend 5 s of discovery retries on nodes that are not up yet) and then b and c,
#   which find a through classic peer discovery and join it as they boot: no rabbitmqctl
#   stop_app/join_cluster round trips (each CLI call costs seconds of escript start-up).
#   Starting all three at once does not work: a joining node holds the discovery lock
#   while it retries, and a waits for that lock before it can boot.
# - A node restarted with its data ("revive") rejoins by itself; it is back once every node
#   is in rabbit_nodes:all_running() as it sees it, asked through erl_call (part of
#   erlang-base, a C program: a call takes milliseconds where rabbitmqctl takes seconds).
# - "start" after "stop" makes the cluster anew instead of restarting it with its data: a
#   RabbitMQ cluster restarted from disk waits for the node that stopped last, and old test
#   queues (quorum queues are a Raft group each) would only slow every start down.
set -euo pipefail

BROKER_NAME=cluster
# shellcheck source=SCRIPTDIR/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

CLUSTER_DIR="$BROKERS_STATE_DIR/cluster"
NODES=(a b c)
FIRST_NODE=a
WS_PATH=/ws
EPMD_PORT=$CLUSTER_EPMD_PORT
COOKIE_FILE="$CLUSTER_DIR/.erlang.cookie"
# How long a node may take to appear in the others' view once its ports answer.
JOIN_TIMEOUT=30
KILL_TIMEOUT=10
ERL_CALL_TIMEOUT=5

# `|| true`: without the package, find fails, and pipefail would end the script here
# without the clear message of require_installed.
RMQ_HOME="$(find /usr/lib/rabbitmq/lib -maxdepth 1 -type d -name 'rabbitmq_server-*' 2>/dev/null | sort -V | tail -n 1 || true)"
ERL_CALL="$(command -v erl_call || true)"
[ -n "$ERL_CALL" ] || ERL_CALL=/usr/lib/erlang/bin/erl_call
EPMD_BIN="$(command -v epmd || true)"
[ -n "$EPMD_BIN" ] || EPMD_BIN=/usr/lib/erlang/bin/epmd

require_installed() {
    if [ -z "$RMQ_HOME" ] || [ ! -x "$RMQ_HOME/sbin/rabbitmq-server" ]; then
        die "RabbitMQ is not installed (no /usr/lib/rabbitmq/lib/rabbitmq_server-*); run scripts/brokers/install.sh"
    fi
    [ -x "$ERL_CALL" ] || die "erl_call (package erlang-base) not found; run scripts/brokers/install.sh"
}

is_node() { case "${1:-}" in a | b | c) return 0 ;; *) return 1 ;; esac; }
node_name() { echo "stompws-$1@localhost"; }
node_dir() { echo "$CLUSTER_DIR/$1"; }
marker_of() { echo "cluster-$1:$CLUSTER_DIR/$1"; }
# port_of NODE KIND, KIND one of DIST, STOMP, WS (the names in ports.env).
port_of() {
    local var="CLUSTER_${1^^}_${2}_PORT"
    echo "${!var}"
}

# Export the environment of node $1 (call it in a subshell: it differs per node).
node_env() {
    local node=$1 dir name
    dir="$(node_dir "$node")"
    name="$(node_name "$node")"
    export HOME="$CLUSTER_DIR"
    export RABBITMQ_HOME="$RMQ_HOME"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_PLUGINS_DIR="$RMQ_HOME/plugins"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_LOGS="$dir/log/$name.log"
    export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
    export RABBITMQ_NODENAME="$name"
    export RABBITMQ_USE_LONGNAME=false
    RABBITMQ_DIST_PORT="$(port_of "$node" DIST)"
    export RABBITMQ_DIST_PORT
    export ERL_EPMD_ADDRESS=127.0.0.1
    export ERL_EPMD_PORT="$EPMD_PORT"
    export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

ensure_cookie() {
    mkdir -p "$CLUSTER_DIR"
    if [ ! -s "$COOKIE_FILE" ]; then
        # Erlang refuses a cookie file that others can read.
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$COOKIE_FILE")
        chmod 400 "$COOKIE_FILE"
    fi
}

write_config() {
    local node=$1 dir peer index=1 peers
    dir="$(node_dir "$node")"
    mkdir -p "$dir/log" "$dir/mnesia"
    : >"$dir/rabbitmq-env.conf"
    echo '[].' >"$dir/advanced.config"
    echo '[rabbitmq_stomp,rabbitmq_web_stomp].' >"$dir/enabled_plugins"
    {
        echo "# Generated by scripts/brokers/cluster.sh; rewritten on every start."
        echo "listeners.tcp = none"
        echo "stomp.listeners.tcp.1 = 127.0.0.1:$(port_of "$node" STOMP)"
        echo "web_stomp.tcp.ip = 127.0.0.1"
        echo "web_stomp.tcp.port = $(port_of "$node" WS)"
        echo "web_stomp.ws_path = $WS_PATH"
        echo "loopback_users.guest = true"
        echo "log.file.level = info"
        echo "log.console = false"
        echo "cluster_formation.peer_discovery_backend = classic_config"
        # The first node forms the cluster: it must not spend the discovery retries
        # waiting for the others.  They look for it only.
        if [ "$node" = "$FIRST_NODE" ]; then
            peers=("$node")
        else
            peers=("$FIRST_NODE")
        fi
        for peer in "${peers[@]}"; do
            echo "cluster_formation.classic_config.nodes.$index = $(node_name "$peer")"
            index=$((index + 1))
        done
    } >"$dir/rabbitmq.conf"
}

# The node's processes, epmd excluded (the three nodes share it).
node_pids() {
    local pid
    for pid in $(marker_pids "$(marker_of "$1")"); do
        [ "$(pid_comm "$pid")" = epmd ] || echo "$pid"
    done
}

beam_pid() {
    local pid
    for pid in $(node_pids "$1"); do
        case "$(pid_comm "$pid")" in beam*) echo "$pid"; return 0 ;; esac
    done
    return 0
}

# The epmd our nodes started: it carries the marker of whichever node spawned it.
our_epmd_pids() {
    local node pid
    for node in "${NODES[@]}"; do
        for pid in $(marker_pids "$(marker_of "$node")"); do
            [ "$(pid_comm "$pid")" = epmd ] && echo "$pid"
        done
    done
    return 0
}

ready() {
    local node=$1
    "$PYTHON" "$BROKERS_SCRIPTS_DIR/wait_ready.py" stomp 127.0.0.1 "$(port_of "$node" STOMP)" \
        --login guest --passcode guest --timeout 0 --quiet 2>/dev/null \
        && "$PYTHON" "$BROKERS_SCRIPTS_DIR/wait_ready.py" ws 127.0.0.1 "$(port_of "$node" WS)" "$WS_PATH" \
            --timeout 0 --quiet 2>/dev/null
}

# Wait until node $1 answers STOMP and Web-STOMP; $2: pid of the start-up script, if any.
wait_ready() {
    local node=$1 pid=${2:-}
    "$PYTHON" "$BROKERS_SCRIPTS_DIR/wait_ready.py" stomp 127.0.0.1 "$(port_of "$node" STOMP)" \
        --login guest --passcode guest --timeout "$START_TIMEOUT" --quiet ${pid:+--pid "$pid"} \
        && "$PYTHON" "$BROKERS_SCRIPTS_DIR/wait_ready.py" ws 127.0.0.1 "$(port_of "$node" WS)" "$WS_PATH" \
            --timeout 20 --quiet ${pid:+--pid "$pid"}
}

# The running cluster members as node $1 sees them, as letters on one line ("a b c"); empty
# when the node does not answer.
running_members() {
    local answer
    [ -r "$COOKIE_FILE" ] || return 0
    answer="$(ERL_EPMD_PORT="$EPMD_PORT" timeout "$ERL_CALL_TIMEOUT" "$ERL_CALL" \
        -sname "$(node_name "$1")" -c "$(cat "$COOKIE_FILE")" \
        -a 'rabbit_nodes all_running []' 2>/dev/null || true)"
    printf '%s\n' "$answer" | grep -o "stompws-[abc]@localhost" | sed 's/^stompws-\(.\)@.*/\1/' | sort -u | one_line
}

# Wait until every node sees all three running; false after $JOIN_TIMEOUT seconds.
wait_joined() {
    local deadline=$((SECONDS + JOIN_TIMEOUT)) node joined
    while :; do
        joined=1
        for node in "${NODES[@]}"; do
            [ "$(running_members "$node")" = "a b c" ] || joined=0
        done
        [ "$joined" -eq 1 ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

show_join_state() {
    local node
    for node in "${NODES[@]}"; do
        echo "$BROKER_NAME.sh: node $node sees running: $(running_members "$node")" >&2
    done
}

# Start node $1 detached; prints the pid of its start-up script.
launch() {
    local node=$1 dir log
    dir="$(node_dir "$node")"
    log="$dir/log/startup.log"
    write_config "$node"
    echo "===== $(date -Is) start" >>"$log"
    (
        node_env "$node"
        cd "$dir"
        exec env STOMPWS_BROKER_MARKER="$(marker_of "$node")" setsid nohup \
            "$RMQ_HOME/sbin/rabbitmq-server" >>"$log" 2>&1 </dev/null 9>&-
    ) &
    echo $!
}

start_failed_node() {
    local node=$1 pid=${2:-} dir
    dir="$(node_dir "$node")"
    echo "$BROKER_NAME.sh: node $node ($(node_name "$node")):" >&2
    start_failed "$pid"
    show_log_tail "$dir/log/startup.log" "$dir/log/$(node_name "$node").log"
}

# Start the given nodes in parallel (with their data) and wait until each answers.
start_nodes() {
    local node rc=0
    declare -A pids=()
    for node in "$@"; do
        if [ -z "$(node_pids "$node")" ]; then
            require_ports_free "$(port_of "$node" DIST)" "$(port_of "$node" STOMP)" "$(port_of "$node" WS)"
            pids[$node]="$(launch "$node")"
            log "starting node $(node_name "$node") (pid ${pids[$node]}, state in $(node_dir "$node"))"
        fi
    done
    for node in "$@"; do
        if ! wait_ready "$node" "${pids[$node]:-}"; then
            start_failed_node "$node" "${pids[$node]:-}"
            rc=1
        fi
    done
    return "$rc"
}

require_epmd_port() {
    if port_open "$EPMD_PORT" && [ -z "$(our_epmd_pids)" ]; then
        die "port 127.0.0.1:$EPMD_PORT (CLUSTER_EPMD_PORT) is in use by another process, not our epmd"
    fi
}

do_start() {
    local t0 node missing=() running=()
    t0="$(now)"
    for node in "${NODES[@]}"; do
        if [ -n "$(node_pids "$node")" ]; then running+=("$node"); else missing+=("$node"); fi
    done
    ensure_cookie
    require_epmd_port
    if [ "${#running[@]}" -eq 0 ]; then
        for node in "${NODES[@]}"; do
            rm -rf "$(node_dir "$node")/mnesia"
        done
        log "forming a new cluster in $CLUSTER_DIR"
        start_nodes "$FIRST_NODE" || return 1
        start_nodes "${NODES[@]:1}" || return 1
    else
        if [ "${#missing[@]}" -gt 0 ]; then
            log "nodes ${running[*]} run; starting ${missing[*]} with their data"
        fi
        start_nodes "${NODES[@]}" || return 1
    fi
    if ! wait_joined; then
        echo "$BROKER_NAME.sh: the nodes did not form one cluster within ${JOIN_TIMEOUT} s" >&2
        show_join_state
        return 1
    fi
    log "ready in $(since "$t0") s: $(describe)"
}

describe() {
    local node text=""
    for node in "${NODES[@]}"; do
        text+="${text:+; }$node: STOMP 127.0.0.1:$(port_of "$node" STOMP) ws://127.0.0.1:$(port_of "$node" WS)$WS_PATH"
    done
    echo "$text"
}

# SIGKILL node $1's beam (and what is left of its processes) and wait until they are gone.
do_kill() {
    local node=$1 t0 beam pids deadline killed_at
    t0="$(now)"
    beam="$(beam_pid "$node")"
    if [ -z "$beam" ]; then
        log "node $node is not running"
        return 0
    fi
    kill -KILL "$beam" 2>/dev/null || true
    killed_at="$(now)"
    deadline=$((SECONDS + KILL_TIMEOUT))
    while [ -n "$(node_pids "$node")" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            pids="$(node_pids "$node")"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            die "node $node: processes $(echo "$pids" | one_line) outlived its beam by ${KILL_TIMEOUT} s"
        fi
        sleep 0.05
    done
    # The moment of the kill (Unix time) is printed for tests that time a fail-over from it.
    log "killed node $node (beam pid $beam) at $killed_at; done in $(since "$t0") s"
}

do_revive() {
    local node=$1 t0
    t0="$(now)"
    if [ ! -d "$(node_dir "$node")/mnesia" ]; then
        die "node $node was never started: use '$0 start'"
    fi
    if [ -n "$(node_pids "$node")" ] && ready "$node" && [ "$(running_members "$node")" = "a b c" ]; then
        log "node $node is running and in the cluster"
        return 0
    fi
    # Alone, a node restarted from its data waits minutes for the tables of the nodes that
    # stopped after it; revive is for a node lost from a running cluster.
    local peer others=0
    for peer in "${NODES[@]}"; do
        [ "$peer" != "$node" ] && [ -n "$(beam_pid "$peer")" ] && others=$((others + 1))
    done
    [ "$others" -gt 0 ] || die "no other node of the cluster is running: use '$0 start'"
    ensure_cookie
    require_epmd_port
    start_nodes "$node" || return 1
    if ! wait_joined; then
        echo "$BROKER_NAME.sh: node $node did not rejoin the cluster within ${JOIN_TIMEOUT} s" >&2
        show_join_state
        return 1
    fi
    log "node $node revived and back in the cluster in $(since "$t0") s"
}

stop_epmd_if_unused() {
    local pid
    for pid in $(our_epmd_pids); do
        if ERL_EPMD_PORT="$EPMD_PORT" "$EPMD_BIN" -names 2>/dev/null | grep -q '^name '; then
            log "epmd (pid $pid) still has registered nodes; leaving it running"
        else
            kill "$pid" 2>/dev/null || true
        fi
    done
}

do_stop() {
    local t0 node beam any=0 deadline pids ports=()
    t0="$(now)"
    for node in "${NODES[@]}"; do
        ports+=("$(port_of "$node" DIST)" "$(port_of "$node" STOMP)" "$(port_of "$node" WS)")
        beam="$(beam_pid "$node")"
        [ -n "$(node_pids "$node")" ] && any=1
        # SIGTERM to beam makes RabbitMQ shut down cleanly (init:stop); all at once, since
        # the data is not kept for a restart anyway.
        [ -n "$beam" ] && kill -TERM "$beam" 2>/dev/null
    done
    if [ "$any" -eq 0 ]; then
        stop_epmd_if_unused
        log "not running"
        return 0
    fi
    log "stopping nodes"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        pids="$(for node in "${NODES[@]}"; do node_pids "$node"; done)"
        [ -z "$pids" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "nodes did not stop within ${STOP_TIMEOUT} s; killing pids $(echo "$pids" | one_line)"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.2
    done
    wait_ports_closed 30 "${ports[@]}" || die "ports still open after stop"
    stop_epmd_if_unused
    for node in "${NODES[@]}"; do
        rm -f "$(node_dir "$node")/rabbitmq.pid"
    done
    log "stopped in $(since "$t0") s"
}

do_status() {
    local node rc=0 members
    for node in "${NODES[@]}"; do
        if ready "$node"; then
            members="$(running_members "$node")"
            log "node $node ($(node_name "$node")): answering on STOMP 127.0.0.1:$(port_of "$node" STOMP) and ws://127.0.0.1:$(port_of "$node" WS)$WS_PATH; sees running: ${members:-?}"
            [ "$members" = "a b c" ] || rc=1
        elif [ -n "$(node_pids "$node")" ]; then
            log "node $node: processes exist ($(node_pids "$node" | one_line)) but it does not answer"
            rc=1
        else
            log "node $node: not running"
            rc=1
        fi
    done
    return "$rc"
}

usage() {
    echo "usage: $0 {start|stop|status|kill NODE|revive NODE|ctl NODE ARGS...} (NODE: a, b or c)" >&2
    exit 2
}

cmd="${1:-}"
case "$cmd" in
    start | stop | status) [ "$#" -eq 1 ] || usage ;;
    kill | revive) if [ "$#" -ne 2 ] || ! is_node "$2"; then usage; fi ;;
    ctl) if [ "$#" -lt 2 ] || ! is_node "$2"; then usage; fi ;;
    *) usage ;;
esac
require_installed
case "$cmd" in
    ctl)
        node=$2
        shift 2
        node_env "$node"
        exec "$RMQ_HOME/sbin/rabbitmqctl" -n "$(node_name "$node")" "$@"
        ;;
    status)
        do_status
        exit
        ;;
esac
take_lock "$CLUSTER_DIR"
case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    kill) do_kill "$2" ;;
    revive) do_revive "$2" ;;
esac
