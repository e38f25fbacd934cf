#!/usr/bin/env bash
# Compares two builds on this box in one run: for each binary directory given, a fresh
# 3-node cluster (cluster-config/, data in a temp dir) and the same benches, one after the
# other, all driven by the newest goschedctl. Figures to compare are ratios within a run.
#   scripts/bench-ab.sh DIR_A DIR_B     (each holding a `goscheduler` binary)
#   ONLY=burst scripts/bench-ab.sh ...  runs only the bench of that name (creates, batch,
#                                       lateness, burst)
#   ROUNDS=7 ...                        rounds of the lateness and burst benches (3)
#   CTL=/path/to/goschedctl ...         another build's bench tool (its receiver)
#   ONLY=etcd ...                       instead: scripts/bench-vs-etcd.sh (one round, its own
#                                       etcd each time) against each build's cluster
# A directory written DIR:plain runs that build with plaintext between the nodes
# (cluster-config/ with `[tls] insecure = true` instead of its certificates).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
CTL="${CTL:-$BIN_DIR/goschedctl}"
ROUNDS="${ROUNDS:-3}"
# The admin token of cluster-config/ (builds without auth ignore it).
export GOSCHED_ADMIN_TOKEN="${GOSCHED_ADMIN_TOKEN:-dev-admin-token-change-me}"
[ -x "$CTL" ] || build_release
ensure_dev_certs "$ROOT/data/cluster/certs"

start_cluster() { # $1 = binary dir, $2 = data dir, $3 = config dir
    for n in 1 2 3; do
        GOSCHED_DATA_DIR="$2/node$n" nohup "$1/goscheduler" --config "$3/node$n.toml" \
            >>"$2/node$n.log" 2>&1 &
        echo $! >"$2/node$n.pid"
    done
    for n in 1 2 3; do
        for _ in $(seq 1 300); do
            curl -sf "http://127.0.0.1:808$n/goscheduler/healthcheck" >/dev/null && break
            sleep 0.2
        done
    done
    sleep 10 # leaders settle (balancer)
}

stop_cluster() { # $1 = data dir
    for n in 1 2 3; do kill -TERM "$(cat "$1/node$n.pid")" 2>/dev/null || true; done
    sleep 3
    for n in 1 2 3; do kill -KILL "$(cat "$1/node$n.pid")" 2>/dev/null || true; done
}

bench() { # $1 = name, $2 = title, the rest = goschedctl bench options
    local name="$1" title="$2"
    shift 2
    [ -z "${ONLY:-}" ] || [ "$ONLY" = "$name" ] || return 0
    echo "--- $title"
    "$CTL" bench "$@"
}

for spec in "$@"; do
    dir="${spec%:plain}"
    data=$(mktemp -d)
    configs="cluster-config"
    if [ "$spec" != "$dir" ]; then
        configs="$data/config"
        mkdir -p "$configs"
        for n in 1 2 3; do
            sed '/^\[tls\]/,/^$/d' "cluster-config/node$n.toml" >"$configs/node$n.toml"
            printf '\n[tls]\ninsecure = true\n' >>"$configs/node$n.toml"
        done
    fi
    echo "=== $spec"
    start_cluster "$dir" "$data" "$configs"
    bench creates "single creates, 64 in flight" \
        --count 20000 --lead-secs 900 --concurrency 64 --creates-only
    bench batch "batch of 100, 16 in flight" \
        --count 100000 --lead-secs 900 --batch 100 --concurrency 16 --creates-only
    bench lateness "lateness, 1,000 runs due in one second" \
        --count 1000 --lead-secs 3 --batch 500 --rounds "$ROUNDS"
    bench burst "burst, 10,000 runs due in one second" \
        --count 10000 --lead-secs 5 --batch 1000 --concurrency 8 --rounds "$ROUNDS"
    if [ "${ONLY:-}" = etcd ]; then
        scripts/bench-vs-etcd.sh --rounds 1
    fi
    stop_cluster "$data"
    rm -rf "$data"
done
