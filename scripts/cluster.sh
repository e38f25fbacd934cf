#!/usr/bin/env bash
# A 3-node cluster on 127.0.0.1 (configs in cluster-config/, data and logs in data/cluster/),
# with mutual TLS between the nodes (a dev CA in data/cluster/certs/) and the admin token on.
#   scripts/cluster.sh up      start the nodes that are not running (idempotent; restarts rejoin)
#   scripts/cluster.sh down    stop them (SIGTERM: a graceful drain; SIGKILL after 25 s)
#   scripts/cluster.sh status  goschedctl status of the cluster
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
DATA="$ROOT/data/cluster"
NODES=(1 2 3)

running() { [ -f "$DATA/node$1.pid" ] && kill -0 "$(cat "$DATA/node$1.pid")" 2>/dev/null; }

up() {
    build_release
    mkdir -p "$DATA"
    ensure_dev_certs "$DATA/certs"
    for n in "${NODES[@]}"; do
        if running "$n"; then
            echo "node $n already running (pid $(cat "$DATA/node$n.pid"))"
            continue
        fi
        nohup "$BIN_DIR/goscheduler" --config "cluster-config/node$n.toml" >>"$DATA/node$n.log" 2>&1 &
        echo $! >"$DATA/node$n.pid"
        echo "node $n started (pid $!, log $DATA/node$n.log)"
    done
    for n in "${NODES[@]}"; do
        local ok=""
        for _ in $(seq 1 300); do
            if curl -sf "http://127.0.0.1:808$n/goscheduler/healthcheck" >/dev/null; then ok=1; break; fi
            sleep 0.2
        done
        [ -n "$ok" ] || { echo "node $n not healthy after 60 s; see $DATA/node$n.log" >&2; exit 1; }
    done
    echo "cluster up: REST on 127.0.0.1:8081-8083, gRPC/admin on 127.0.0.1:9091-9093"
}

down() {
    for n in "${NODES[@]}"; do
        if running "$n"; then
            local pid; pid=$(cat "$DATA/node$n.pid")
            kill -TERM "$pid"
            for _ in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "node $n stopped"
        fi
        rm -f "$DATA/node$n.pid"
    done
}

status() {
    [ -x "$BIN_DIR/goschedctl" ] || build_release
    "$BIN_DIR/goschedctl" --ca "$DATA/certs/ca.pem" --addr 127.0.0.1:9091 status "$@"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) shift; status "$@" ;;
    *) echo "usage: $0 {up|down|status [--json]}" >&2; exit 2 ;;
esac
