#!/usr/bin/env bash
# Millions of pending schedules in the running 3-node cluster (scripts/cluster.sh up, fresh
# data for figures that mean something): creates them in chunks by batches of 1,000 (runs
# due hours ahead, spread over an hour), printing after each chunk its create rate, every
# node's RSS and disk; then the lateness of 1,000 runs/s for 5 s fired with that backlog;
# then the catch-up of node 3 after losing its data dir (remove-node, empty dir, restart,
# add-node: its snapshot of every shard), timed.
#   GOSCHED_RAFT__KEEP_AFTER_SNAPSHOT=100 scripts/cluster.sh up
#   scripts/bench-scale.sh [--chunks 10] [--chunk 1000000] [--no-catch-up]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
DATA="$ROOT/data/cluster"
CTL="$BIN_DIR/goschedctl"
export GOSCHED_ADMIN_TOKEN="${GOSCHED_ADMIN_TOKEN:-dev-admin-token-change-me}"
export GOSCHED_CA_FILE="$DATA/certs/ca.pem"
CHUNKS=10 CHUNK=1000000 CATCH_UP=1
while [ $# -gt 0 ]; do
    case "$1" in
        --chunks) CHUNKS="$2"; shift 2 ;;
        --chunk) CHUNK="$2"; shift 2 ;;
        --no-catch-up) CATCH_UP=""; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

rss_mb() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$(cat "$DATA/node$1.pid")/status") / 1024 )); }
nodes_line() {
    local out=""
    for n in 1 2 3; do
        out+="node$n rss $(rss_mb "$n") MB disk $(du -sm "$DATA/node$n" | cut -f1) MB; "
    done
    echo "$out"
}

echo "chunk | pending after | creates/s | request p99 | nodes"
for i in $(seq 1 "$CHUNKS"); do
    line=$("$CTL" bench --count "$CHUNK" --lead-secs 20000 --spread-secs 3600 --batch 1000 \
        --concurrency 8 --creates-only | grep '^creates:')
    rate=$(sed -E 's/.*= ([0-9]+) creates\/s.*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99 ([0-9.]+ ms).*/\1/' <<<"$line")
    echo "$i | $((i * CHUNK)) | $rate | $p99 | $(nodes_line)"
done

echo "--- lateness with the backlog: 1,000 runs per second for 5 s"
"$CTL" bench --count 5000 --spread-secs 4 --lead-secs 6 --batch 500 --concurrency 8 --rounds 2

[ -n "$CATCH_UP" ] || exit 0
echo "--- node 3 loses its data dir and catches up"
# Nodes 1 and 2 compact their logs first, so node 3 catches up by snapshots: start the
# cluster with GOSCHED_RAFT__KEEP_AFTER_SNAPSHOT=100 for them to keep little more.
for a in 9091 9092; do "$CTL" --addr "127.0.0.1:$a" snapshot --all >/dev/null; done
"$CTL" --addr 127.0.0.1:9091 remove-node --id 3
kill -TERM "$(cat "$DATA/node3.pid")"
while kill -0 "$(cat "$DATA/node3.pid")" 2>/dev/null; do sleep 0.2; done
rm -rf "$DATA/node3" "$DATA/node3.pid"
start=$(date +%s.%N)
# Not healthy (it knows no leaders) until it is a member again: started here, not by cluster.sh.
nohup "$BIN_DIR/goscheduler" --config cluster-config/node3.toml >>"$DATA/node3.log" 2>&1 &
echo $! >"$DATA/node3.pid"
sleep 1
"$CTL" --addr 127.0.0.1:9091 add-node --id 3 --grpc-addr 127.0.0.1:9093 --http-addr 127.0.0.1:8083
end=$(date +%s.%N)
until curl -sf http://127.0.0.1:8083/goscheduler/healthcheck >/dev/null; do sleep 0.2; done
healthy=$(date +%s.%N)
# Caught up: node 3 has applied everything it holds in every shard (nothing is written now).
applied_all() {
    "$CTL" --addr 127.0.0.1:9091 status 2>/dev/null | awk '$1 == 3 && $2 ~ /^shard-/ {
        n++; if ($6 == 0 || $7 != $6) behind++ } END { exit !(n > 0 && behind == 0) }'
}
until applied_all; do sleep 2; done
applied=$(date +%s.%N)
took() { awk -v a="$start" -v b="$1" 'BEGIN {print b - a}'; }
printf 'node 3: a voter of every group in %.1f s, healthy in %.1f s, every shard applied in %.1f s (from its start)\n' \
    "$(took "$end")" "$(took "$healthy")" "$(took "$applied")"
"$CTL" --addr 127.0.0.1:9093 status | awk 'NR == 1 || ($1 == 3 && $2 ~ /^(meta|shard-)/)' 
echo "after: $(nodes_line)"
echo "left in node 3's snapshots/incoming: $(du -sm "$DATA/node3/snapshots/incoming" 2>/dev/null | cut -f1) MB"
